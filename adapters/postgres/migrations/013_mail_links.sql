-- A mail's portal link, as the mailer decided it (issue #23): the order, customer, language and
-- expiry of the token, and the random slot in the message where the signed token goes when the
-- mail is handed over. Nothing else in a message is ever signed. Mails planned before this
-- migration carry no link: their old unsigned placeholders go out as they are, as dead links.
ALTER TABLE customer_mail ADD COLUMN link jsonb;
