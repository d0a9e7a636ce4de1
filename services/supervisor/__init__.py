"""`livermore up`: Redis, Postgres, migrations, the simulator and every service under one parent."""
