-- The worker closes shipped exchanges and repairs nobody closed (RETURNS_AUTO_CLOSE_DAYS): it
-- looks for cases by state across merchants, few of them in any one state at a time.
CREATE INDEX cases_by_state ON cases (state, updated_at);
