DROP TABLE password_credentials;
