DROP TABLE oauth_clients;
