"""The hash-chained audit trail, its verification, review page and exports."""
