//! Version pinning: `X-Rollout-Version: primary | canary | <number>` sends a request only to
//! that version (to try a canary by hand). Primary = the oldest version taking traffic, canary =
//! the newest when two take traffic.

pub const PIN_HEADER: &str = "x-rollout-version";

/// The version a pin header asks for, or the message of a 404.
pub fn resolve_pin(header: &str, serving: &[i64], service: &str) -> Result<i64, String> {
    let value = header.trim().to_lowercase();
    let list = if serving.is_empty() { "none".to_string() } else { serving.iter().map(|v| format!("v{v}")).collect::<Vec<_>>().join(", ") };
    match value.as_str() {
        "primary" => serving.first().copied().ok_or_else(|| format!("no version of {service} takes traffic")),
        "canary" => {
            if serving.len() > 1 {
                Ok(serving[serving.len() - 1])
            } else {
                Err(format!("{service} has no canary: serving {list}"))
            }
        }
        _ => {
            let digits = value.strip_prefix('v').unwrap_or(&value);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{PIN_HEADER} must be \"primary\", \"canary\" or a version number, got \"{value}\""));
            }
            match digits.parse::<i64>() {
                Ok(version) if serving.contains(&version) => Ok(version),
                _ => Err(format!("version {digits} of {service} takes no traffic (serving {list})")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins() {
        let serving = [1, 2];
        let table: Vec<(&str, &[i64], Result<i64, &str>)> = vec![
            ("primary", &serving, Ok(1)),
            ("canary", &serving, Ok(2)),
            (" Canary ", &serving, Ok(2)),
            ("1", &serving, Ok(1)),
            ("v2", &serving, Ok(2)),
            ("7", &serving, Err("version 7 of svc takes no traffic (serving v1, v2)")),
            ("newest", &serving, Err("x-rollout-version must be \"primary\", \"canary\" or a version number, got \"newest\"")),
            ("v", &serving, Err("x-rollout-version must be \"primary\", \"canary\" or a version number, got \"v\"")),
            ("canary", &[1], Err("svc has no canary: serving v1")),
            ("primary", &[], Err("no version of svc takes traffic")),
            ("99999999999999999999", &serving, Err("version 99999999999999999999 of svc takes no traffic (serving v1, v2)")),
        ];
        for (header, serving, want) in table {
            assert_eq!(resolve_pin(header, serving, "svc"), want.map_err(String::from), "header {header:?}");
        }
    }
}
