"""`cosmos-archive` command line (product commands; the dev kit adds the local-stack ones)."""
