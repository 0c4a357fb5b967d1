//! Users, password hashes and region scopes, shared by the SQL endpoint and
//! the HTTP alert feed.
//!
//! A password is stored only as its SCRAM-SHA-256 salted password
//! (PBKDF2-HMAC-SHA-256, the value PostgreSQL's SCRAM exchange is built on):
//! `scram-sha-256$<iterations>$<salt, base64>$<salted password, base64>`,
//! written by `jiancha hash-password`. The SQL endpoint runs the SCRAM
//! exchange with it, so the password never crosses the wire; HTTP Basic
//! authentication recomputes it from the password given.

use crate::config::{Role, UserConfig};
use crate::reference::RefData;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// PBKDF2 iterations of new hashes (PostgreSQL's default).
pub const ITERATIONS: usize = 4096;

/// A parsed password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordHash {
    /// PBKDF2 iterations.
    pub iterations: usize,
    /// The salt.
    pub salt: Vec<u8>,
    /// PBKDF2-HMAC-SHA-256(password, salt, iterations).
    pub salted: Vec<u8>,
}

/// A `password` that is not a hash from `jiancha hash-password`; the
/// configuration is refused until it is replaced by one.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Not four `$`-separated parts.
    #[error("not a hash from `jiancha hash-password` (scram-sha-256$ITER$SALT$HASH)")]
    Form,
    /// A scheme other than `scram-sha-256`.
    #[error("unknown scheme {0:?} (expected scram-sha-256)")]
    Scheme(String),
    /// The iteration count is not a number.
    #[error("iterations {0:?} is not a number")]
    IterationsNotANumber(String),
    /// An iteration count other than [`ITERATIONS`].
    #[error("iterations must be {ITERATIONS}")]
    Iterations,
    /// The salt is not base64.
    #[error("salt: {0}")]
    Salt(#[source] base64::DecodeError),
    /// The salted password is not base64.
    #[error("hash: {0}")]
    Hash(#[source] base64::DecodeError),
    /// The salt or the salted password has the wrong length.
    #[error("salt shorter than 8 bytes or hash not 32 bytes")]
    Length,
}

/// A configured user the service cannot serve; it does not start.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The user's password hash does not parse.
    #[error("user {user:?}: {source}")]
    Hash {
        /// The user's name.
        user: String,
        /// What is wrong with the hash.
        #[source]
        source: HashError,
    },
    /// A reader's region is not in the regions file.
    #[error("user {user:?}: region {region:?} is not in the regions file")]
    Region {
        /// The user's name.
        user: String,
        /// The region code given.
        region: String,
    },
}

impl PasswordHash {
    /// Parses `scram-sha-256$ITER$SALT$SALTED`.
    pub fn parse(s: &str) -> Result<PasswordHash, HashError> {
        let parts: Vec<&str> = s.split('$').collect();
        let [scheme, iters, salt, salted] = parts.as_slice() else {
            return Err(HashError::Form);
        };
        if *scheme != "scram-sha-256" {
            return Err(HashError::Scheme(scheme.to_string()));
        }
        let iterations: usize = iters.parse().map_err(|_| HashError::IterationsNotANumber(iters.to_string()))?;
        if iterations != ITERATIONS {
            return Err(HashError::Iterations);
        }
        let salt = B64.decode(salt).map_err(HashError::Salt)?;
        let salted = B64.decode(salted).map_err(HashError::Hash)?;
        if salt.len() < 8 || salted.len() != 32 {
            return Err(HashError::Length);
        }
        Ok(PasswordHash { iterations, salt, salted })
    }

    /// Hashes `password` with a fresh random salt.
    pub fn new(password: &str) -> std::io::Result<PasswordHash> {
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt).map_err(std::io::Error::other)?;
        let salted =
            datafusion_postgres::pgwire::api::auth::sasl::scram::gen_salted_password(password, &salt, ITERATIONS);
        Ok(PasswordHash { iterations: ITERATIONS, salt, salted })
    }

    /// Whether `password` is the one hashed (constant-time comparison).
    pub fn verify(&self, password: &str) -> bool {
        let got = datafusion_postgres::pgwire::api::auth::sasl::scram::gen_salted_password(
            password,
            &self.salt,
            self.iterations,
        );
        bool::from(got.ct_eq(&self.salted))
    }
}

impl std::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scram-sha-256${}${}${}", self.iterations, B64.encode(&self.salt), B64.encode(&self.salted))
    }
}

/// The regions a user may see: `None` for all.
pub type Scope = Option<Arc<BTreeSet<String>>>;

/// One known user.
#[derive(Clone, Debug)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Password hash.
    pub hash: PasswordHash,
    /// Regions visible (`None` = all).
    pub scope: Scope,
    /// The scope's key: the region code, or "" for all.
    pub region: String,
    /// What the user may do.
    pub role: Role,
}

impl User {
    /// Whether the user may issue and answer supervision notices.
    pub fn may_supervise(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Supervisor)
    }
}

/// Every configured user.
#[derive(Clone, Debug, Default)]
pub struct Users {
    by_name: HashMap<String, User>,
}

/// A region and every region below it.
pub fn region_and_below(refdata: &RefData, code: &str) -> BTreeSet<String> {
    refdata
        .regions
        .rows()
        .iter()
        .filter(|r| refdata.regions.ancestors(&r.code).any(|a| a == code))
        .map(|r| r.code.clone())
        .chain(std::iter::once(code.to_string()))
        .collect()
}

impl Users {
    /// Users from configuration (hashes checked by config validation).
    pub fn new(cfg: &[UserConfig], refdata: &RefData) -> Result<Users, UsersError> {
        let mut by_name = HashMap::new();
        for u in cfg {
            let hash =
                PasswordHash::parse(&u.password).map_err(|source| UsersError::Hash { user: u.name.clone(), source })?;
            let (scope, region) = match u.role {
                Role::Admin => (None, String::new()),
                Role::Reader | Role::Supervisor => {
                    if refdata.regions.get(&u.region).is_none() {
                        return Err(UsersError::Region { user: u.name.clone(), region: u.region.clone() });
                    }
                    (Some(Arc::new(region_and_below(refdata, &u.region))), u.region.clone())
                }
            };
            by_name.insert(u.name.clone(), User { name: u.name.clone(), hash, scope, region, role: u.role });
        }
        Ok(Users { by_name })
    }

    /// No users configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Every user name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// A user by name.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    /// The user if the password is right.
    pub fn check(&self, name: &str, password: &str) -> Option<&User> {
        self.by_name.get(name).filter(|u| u.hash.verify(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trip_and_verify() {
        let h = PasswordHash::new("s3cret").unwrap();
        let parsed = PasswordHash::parse(&h.to_string()).unwrap();
        assert_eq!(parsed, h);
        assert!(parsed.verify("s3cret"));
        assert!(!parsed.verify("s3cret "));
        assert!(PasswordHash::parse("s3cret").is_err());
    }
}
