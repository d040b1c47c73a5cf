#!/bin/sh
# Run once by the postgres image when its volume is new (docker-entrypoint-initdb.d): the app gets
# a role of its own that owns its database and may create the scratch databases a restore needs,
# but is no superuser (a superuser can run programs on the server: COPY ... TO PROGRAM).
set -eu
: "${APP_DB_PASSWORD:?POSTGRES_PASSWORD is not set: set it in .env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_user="$APP_DB_USER" -v app_password="$APP_DB_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"app_user" LOGIN CREATEDB NOSUPERUSER NOCREATEROLE PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO :"app_user";
ALTER SCHEMA public OWNER TO :"app_user";
SQL
