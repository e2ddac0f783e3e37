//! Command-line parsing (filled in by the CLI work).
