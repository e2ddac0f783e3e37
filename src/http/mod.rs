//! actix-web edge for Consul's HTTP API v1 (filled in by the HTTP work).
