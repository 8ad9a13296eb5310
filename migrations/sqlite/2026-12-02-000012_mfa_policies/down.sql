DROP TABLE project_mfa_policies;
DROP TABLE organisation_mfa_policies;
