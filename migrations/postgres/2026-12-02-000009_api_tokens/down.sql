DROP TABLE api_token_policies;
DROP TABLE api_token_secrets;
DROP TABLE api_tokens;
