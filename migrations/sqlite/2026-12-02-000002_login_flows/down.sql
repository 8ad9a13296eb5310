DROP TABLE login_flows;
