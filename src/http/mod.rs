//! What every HTTP client of rp-devops shares, whichever service it talks to.

pub mod tls;
