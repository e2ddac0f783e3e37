//! The node's UUID: given, or generated once and kept in `<data_dir>/node-id` so a restart
//! keeps the same identity (Consul does the same).

use super::ConfigError;
use std::path::Path;

pub const NODE_ID_FILE: &str = "node-id";

/// A lower-cased UUID, or the error Consul gives for a malformed one.
pub fn validate(id: &str) -> Result<String, ConfigError> {
    let trimmed = id.trim();
    match uuid::Uuid::parse_str(trimmed) {
        Ok(u) if trimmed.len() == 36 => Ok(u.hyphenated().to_string()),
        _ => Err(ConfigError::Invalid(format!(
            "node_id \"{id}\" is not a valid UUID"
        ))),
    }
}

pub fn generate() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// The id to use: `given` wins (and is written, so it sticks); otherwise the persisted one;
/// otherwise a new one, persisted. Without a data dir (`-dev`) nothing is written.
pub fn resolve(given: Option<&str>, data_dir: Option<&Path>) -> Result<String, ConfigError> {
    let given = given.map(validate).transpose()?;
    let Some(dir) = data_dir else {
        return Ok(given.unwrap_or_else(generate));
    };
    let file = dir.join(NODE_ID_FILE);
    if given.is_none() {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                return validate(&text).map_err(|_| {
                    ConfigError::Invalid(format!(
                        "Failed to parse node ID in {}: not a UUID",
                        file.display()
                    ))
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConfigError::Io(format!(
                    "Failed to read node ID from {}: {e}",
                    file.display()
                )))
            }
        }
    }
    let id = given.unwrap_or_else(generate);
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&file, &id))
        .map_err(|e| {
            ConfigError::Io(format!(
                "Failed to write node ID to {}: {e}",
                file.display()
            ))
        })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_id_persists_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = resolve(None, Some(&data)).expect("first");
        assert!(validate(&first).is_ok());
        assert_eq!(
            std::fs::read_to_string(data.join(NODE_ID_FILE)).expect("file"),
            first
        );
        assert_eq!(resolve(None, Some(&data)).expect("second"), first);
    }

    #[test]
    fn given_id_wins_and_is_normalised() {
        let dir = tempfile::tempdir().expect("tempdir");
        resolve(None, Some(dir.path())).expect("first");
        let given = "ADF4238A-882B-9DDC-4A9D-5B6758E4159E";
        let id = resolve(Some(given), Some(dir.path())).expect("given");
        assert_eq!(id, "adf4238a-882b-9ddc-4a9d-5b6758e4159e");
        assert_eq!(resolve(None, Some(dir.path())).expect("again"), id);
    }

    #[test]
    fn dev_mode_ids_are_fresh_and_bad_ids_are_refused() {
        assert_ne!(
            resolve(None, None).expect("a"),
            resolve(None, None).expect("b")
        );
        assert_eq!(
            resolve(Some("nope"), None).expect_err("bad").to_string(),
            "node_id \"nope\" is not a valid UUID"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(NODE_ID_FILE), "garbage").expect("write");
        assert!(resolve(None, Some(dir.path()))
            .expect_err("corrupt")
            .to_string()
            .starts_with("Failed to parse node ID"));
    }
}
