//! Log lines as JSON on stdout, in pino's shape (level 30 info, 40 warn, 50 error; `time` in ms;
//! `name`, `msg`), so the router's log reads like the rest of the stack's.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

pub fn info(msg: &str, fields: Value) {
    write(30, msg, fields);
}

pub fn warn(msg: &str, fields: Value) {
    write(40, msg, fields);
}

pub fn error(msg: &str, fields: Value) {
    write(50, msg, fields);
}

fn write(level: u8, msg: &str, fields: Value) {
    let mut line = Map::new();
    line.insert("level".into(), level.into());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    line.insert("time".into(), now.into());
    line.insert("pid".into(), std::process::id().into());
    line.insert("name".into(), "router".into());
    if let Value::Object(extra) = fields {
        line.extend(extra);
    }
    line.insert("msg".into(), msg.into());
    let mut out = std::io::stdout().lock();
    // A closed stdout (the parent went away) must not take the router down.
    let _ = writeln!(out, "{}", Value::Object(line));
    let _ = out.flush();
}
