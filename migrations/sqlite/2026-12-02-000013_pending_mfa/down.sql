DROP TABLE pending_mfa_logins;
