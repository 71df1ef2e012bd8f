"""The database: the protocol the call path uses, SQL, write-behind log, analytics."""
