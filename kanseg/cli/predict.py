"""`kanseg` commands of this group (placeholder until implemented)."""
