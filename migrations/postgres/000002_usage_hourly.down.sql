DROP TABLE IF EXISTS usage_hourly;
