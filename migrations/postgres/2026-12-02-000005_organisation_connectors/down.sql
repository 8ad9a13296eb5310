DROP TABLE organisation_connectors;
