//! DNS edge (filled in by the DNS work).
