# Atlas project file. Run from this directory, e.g. `atlas migrate apply --env local`.
# `livermore db migrate` applies the same files where Atlas is not installed, recording them in the
# same atlas_schema_revisions table, so the two can take turns on one database.
# After adding or editing a file in migrations/, rehash: `atlas migrate hash` or `livermore db hash`.

variable "database_url" {
  type    = string
  default = getenv("LIVERMORE_DATABASE_URL")
}

# Native development: the Postgres on this machine (ARCHITECTURE.md's default URL).
env "local" {
  url = var.database_url != "" ? var.database_url : "postgres://postgres@127.0.0.1:5432/livermore?sslmode=disable"
  # Scratch database Atlas uses to replay and lint migrations (never the real one).
  dev = "docker://postgres/16/dev"
  migration {
    dir = "file://migrations"
  }
}

# docker compose: the `postgres` service on the compose network (deploy/compose/).
env "compose" {
  url = var.database_url != "" ? var.database_url : "postgres://postgres:postgres@postgres:5432/livermore?sslmode=disable"
  dev = "docker://postgres/16/dev"
  migration {
    dir = "file://migrations"
  }
}
