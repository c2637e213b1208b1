DROP TABLE setup_links;
DROP TABLE api_tokens;
DROP TABLE user_roles;
DROP TABLE users;
