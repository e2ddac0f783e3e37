//! The argv pre-pass that gives Go-style flags to clap. Consul's users write `-flag value`,
//! `-flag=value`, `--flag value` and `--flag=value` interchangeably, and `-server=false`
//! for booleans. The pre-pass rewrites every flag to clap's `--flag=value` form (booleans
//! to `--flag=true|false`), so clap never has to guess whether `-1` is a value or a flag.
//! Like Go's `flag` package, parsing stops at the first argument that is not a flag.

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// `-server`, `-server=false`.
    Bool,
    /// One value; repeated uses keep the last.
    Value,
    /// Repeatable; every value is kept in order.
    List,
}

#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    pub name: &'static str,
    pub kind: FlagKind,
    /// Name of the value in usage text (`<path>`); empty for booleans.
    pub value_name: &'static str,
    pub help: &'static str,
}

/// The result of the pre-pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// `-h`, `-help` or `--help` was given.
    Help,
    /// Flags in clap's `--name=value` form, then whatever non-flag arguments followed.
    Args {
        flags: Vec<String>,
        extra: Vec<String>,
    },
}

/// Why the arguments were refused; texts follow Go's `flag` package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgvError {
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    #[error("invalid boolean value \"{value}\" for -{name}: parse error")]
    BadBool { name: String, value: String },
}

pub fn prepare(args: &[String], specs: &[FlagSpec]) -> Result<Prepared, ArgvError> {
    let mut flags = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        let Some(body) = flag_body(arg) else { break };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if matches!(name, "h" | "help") {
            return Ok(Prepared::Help);
        }
        let spec = specs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ArgvError::Unknown(name.to_string()))?;
        match spec.kind {
            FlagKind::Bool => {
                let value = match inline {
                    Some(v) => parse_go_bool(&v).ok_or(ArgvError::BadBool {
                        name: name.to_string(),
                        value: v,
                    })?,
                    None => true,
                };
                flags.push(format!("--{name}={value}"));
            }
            FlagKind::Value | FlagKind::List => {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i)
                            .cloned()
                            .ok_or_else(|| ArgvError::MissingValue(name.to_string()))?
                    }
                };
                flags.push(format!("--{name}={value}"));
            }
        }
        i += 1;
    }
    Ok(Prepared::Args {
        flags,
        extra: args[i..].to_vec(),
    })
}

/// `-x...` or `--x...` without the dashes; `None` for non-flags (`value`, `-`, `-1`).
fn flag_body(arg: &str) -> Option<&str> {
    let body = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    body.starts_with(|c: char| c.is_ascii_alphabetic())
        .then_some(body)
}

fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        FlagSpec {
            name: "server",
            kind: FlagKind::Bool,
            value_name: "",
            help: "",
        },
        FlagSpec {
            name: "node",
            kind: FlagKind::Value,
            value_name: "<name>",
            help: "",
        },
        FlagSpec {
            name: "http-port",
            kind: FlagKind::Value,
            value_name: "<port>",
            help: "",
        },
        FlagSpec {
            name: "recursor",
            kind: FlagKind::List,
            value_name: "<addr>",
            help: "",
        },
    ];

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn flags(list: &[&str]) -> Vec<String> {
        match prepare(&args(list), SPECS).expect("parses") {
            Prepared::Args { flags, extra } => {
                assert!(extra.is_empty(), "{extra:?}");
                flags
            }
            Prepared::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn all_four_syntaxes_agree() {
        for form in [
            &["-node", "a"][..],
            &["-node=a"],
            &["--node", "a"],
            &["--node=a"],
        ] {
            assert_eq!(flags(form), vec!["--node=a".to_string()], "{form:?}");
        }
    }

    #[test]
    fn negative_and_dashed_values_are_values() {
        assert_eq!(
            flags(&["-http-port", "-1"]),
            vec!["--http-port=-1".to_string()]
        );
        assert_eq!(
            flags(&["-node", "-weird"]),
            vec!["--node=-weird".to_string()]
        );
        assert_eq!(flags(&["-node=a=b"]), vec!["--node=a=b".to_string()]);
    }

    #[test]
    fn booleans_take_only_inline_values() {
        assert_eq!(
            flags(&["-server", "--server=false", "-server=1"]),
            vec![
                "--server=true".to_string(),
                "--server=false".to_string(),
                "--server=true".to_string()
            ]
        );
        assert_eq!(
            prepare(&args(&["-server=maybe"]), SPECS),
            Err(ArgvError::BadBool {
                name: "server".into(),
                value: "maybe".into()
            })
        );
    }

    #[test]
    fn repeatable_flags_keep_every_value() {
        assert_eq!(
            flags(&["-recursor", "1.1.1.1", "--recursor=8.8.8.8"]),
            vec![
                "--recursor=1.1.1.1".to_string(),
                "--recursor=8.8.8.8".to_string()
            ]
        );
    }

    #[test]
    fn errors_and_help() {
        assert_eq!(
            prepare(&args(&["-bogus"]), SPECS),
            Err(ArgvError::Unknown("bogus".into()))
        );
        assert_eq!(
            prepare(&args(&["--bogus=1"]), SPECS)
                .expect_err("unknown")
                .to_string(),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(
            prepare(&args(&["-node"]), SPECS)
                .expect_err("missing")
                .to_string(),
            "flag needs an argument: -node"
        );
        assert_eq!(
            prepare(&args(&["-server", "-h"]), SPECS),
            Ok(Prepared::Help)
        );
        assert_eq!(prepare(&args(&["--help"]), SPECS), Ok(Prepared::Help));
        assert_eq!(prepare(&args(&["-help"]), SPECS), Ok(Prepared::Help));
    }

    #[test]
    fn parsing_stops_at_the_first_non_flag() {
        assert_eq!(
            prepare(&args(&["-server", "extra", "-node", "x"]), SPECS),
            Ok(Prepared::Args {
                flags: vec!["--server=true".into()],
                extra: args(&["extra", "-node", "x"])
            })
        );
        assert_eq!(
            prepare(&args(&["--", "-node"]), SPECS),
            Ok(Prepared::Args {
                flags: vec![],
                extra: args(&["-node"])
            })
        );
    }
}
