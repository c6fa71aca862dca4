"""Payment gateway adapters: Stripe through its SDK, and the simulated gateway used when no
Stripe key is configured."""
