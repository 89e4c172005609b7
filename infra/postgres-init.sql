-- Run once by the postgres image on an empty volume (docker-compose.yml mounts it):
-- Optuna's sweep studies get a database of their own beside MLflow's (both keep alembic_version).
CREATE DATABASE optuna OWNER mlflow;
