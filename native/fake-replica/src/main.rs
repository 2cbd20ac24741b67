//! A replica for benchmarks that run hundreds at once (bench:control's history and fleet
//! parts): a real process answering real HTTP, as the example model server does, in about a
//! megabyte instead of a Node process's forty. Standard library only, a thread per connection.
//!
//! Environment (as examples/model-server reads it):
//!   PORT (required), HOST (default 127.0.0.1)
//!   MODEL_VERSION (default v1): in the `x-model-version` header and the body of every answer
//!   LOAD_DELAY_SECONDS: `/health` answers 503 until this long after start (default 0; fractions allowed)
//!   NEVER_READY=1: `/health` always 503
//!   EXIT_AFTER_SECONDS: exit with code 1 after this long (a replica that dies)
//! Any other path answers 200 with `{"version": "<MODEL_VERSION>"}`. Keep-alive is honoured.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn env_seconds(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0)
}

struct Settings {
    version: String,
    ready_at: Option<Instant>,
}

fn main() {
    let port: u16 = match std::env::var("PORT").ok().and_then(|p| p.parse().ok()) {
        Some(p) if p > 0 => p,
        _ => {
            eprintln!("fake replica: PORT must be set to a port number");
            std::process::exit(2);
        }
    };
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let started = Instant::now();
    let never_ready = std::env::var("NEVER_READY").as_deref() == Ok("1");
    let settings: &'static Settings = Box::leak(Box::new(Settings {
        version: std::env::var("MODEL_VERSION").unwrap_or_else(|_| "v1".into()),
        ready_at: if never_ready { None } else { Some(started + Duration::from_secs_f64(env_seconds("LOAD_DELAY_SECONDS").unwrap_or(0.0))) },
    }));
    if let Some(after) = env_seconds("EXIT_AFTER_SECONDS") {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(after));
            eprintln!("fake replica: exiting after {after} s (EXIT_AFTER_SECONDS)");
            std::process::exit(1);
        });
    }
    let listener = match TcpListener::bind((host.as_str(), port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake replica: cannot listen on {host}:{port}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("fake replica {} listening on {host}:{port}", settings.version);
    for stream in listener.incoming().flatten() {
        // Small stacks: hundreds of replicas, each with a few connections.
        let _ = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || serve(stream, settings));
    }
}

/// Answers requests on one connection until the client closes it (or asks to).
fn serve(stream: TcpStream, settings: &Settings) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let http10 = request_line.trim_end().ends_with("HTTP/1.0");
        let mut content_length = 0usize;
        let mut close = http10;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
                if name == "content-length" {
                    content_length = value.parse().unwrap_or(0);
                } else if name == "connection" {
                    close = value == "close";
                }
            }
        }
        // The body is read and ignored.
        if content_length > 0 && std::io::copy(&mut (&mut reader).take(content_length as u64), &mut std::io::sink()).is_err() {
            return;
        }
        let (status, body) = if path == "/health" || path.starts_with("/health?") {
            match settings.ready_at {
                Some(at) if Instant::now() >= at => ("200 OK", format!("{{\"status\":\"ok\",\"version\":\"{}\"}}", settings.version)),
                _ => ("503 Service Unavailable", "{\"status\":\"loading\"}".to_string()),
            }
        } else {
            ("200 OK", format!("{{\"version\":\"{}\"}}", settings.version))
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-model-version: {}\r\n{}\r\n",
            body.len(),
            settings.version,
            if close { "connection: close\r\n" } else { "" }
        );
        if writer.write_all(head.as_bytes()).and_then(|_| writer.write_all(body.as_bytes())).is_err() || close {
            return;
        }
    }
}
