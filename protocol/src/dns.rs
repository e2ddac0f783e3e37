//! DNS name parsing (filled in by the DNS work).
