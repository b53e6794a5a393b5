//! `evbus webhook secret|sign|verify`, checked against the Standard
//! Webhooks test vector and a real loopback receiver.

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, TcpListener},
    thread,
};

use common::evbus;
use evbus_webhook::{Secret, Verifier};
use predicates::prelude::*;

/// The specification's published test vector.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP: &str = "1614265330";
const BODY: &str = r#"{"test": 2432232314}"#;
const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
/// The vector's three headers, as `verify` options.
const VECTOR_HEADERS: [&str; 6] = [
    "--id",
    ID,
    "--timestamp",
    TIMESTAMP,
    "--signature",
    SIGNATURE,
];

#[test]
fn sign_matches_the_specification_vector() {
    evbus()
        .args([
            "webhook",
            "sign",
            "--secret",
            SECRET,
            "--id",
            ID,
            "--timestamp",
            TIMESTAMP,
        ])
        .write_stdin(BODY)
        .assert()
        .success()
        .stdout(format!(
            "webhook-id: {ID}\nwebhook-timestamp: {TIMESTAMP}\nwebhook-signature: {SIGNATURE}\n"
        ));
}

#[test]
fn verify_accepts_the_vector_and_says_why_it_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, BODY).unwrap();
    let verify = |extra: &[&str]| {
        let mut c = evbus();
        c.args(["webhook", "verify"])
            .arg(&body)
            .args(["--secret", SECRET])
            .args(extra);
        c
    };
    // The vector is from 2021: a wide tolerance accepts it.
    verify(&[&VECTOR_HEADERS[..], &["--tolerance", "9999999999"]].concat())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "ok: the signature of msg_p5jXN8AQM9LWM0D4loKWxJek matches",
        ));
    // The default tolerance (5 min) calls it old.
    verify(&VECTOR_HEADERS)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("s old"))
        .stderr(predicate::str::contains("clocks"));
    // Headers from a file, as `sign` prints them; a body byte changed.
    let headers = dir.path().join("headers.txt");
    std::fs::write(
        &headers,
        format!("content-type: application/json\nwebhook-id: {ID}\nwebhook-timestamp: {TIMESTAMP}\nwebhook-signature: {SIGNATURE}\n"),
    )
    .unwrap();
    std::fs::write(&body, BODY.replace('2', "3")).unwrap();
    verify(&[
        "--headers",
        headers.to_str().unwrap(),
        "--tolerance",
        "9999999999",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains("no signature matches"))
    .stderr(predicate::str::contains("raw body"));
    // Usage errors: a bad secret, a missing header.
    evbus()
        .args([
            "webhook",
            "verify",
            "--secret",
            "whsec_short",
            "--id",
            "a",
            "--timestamp",
            "1",
            "--signature",
            "v1,x",
        ])
        .write_stdin("x")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("secret"));
    evbus()
        .args(["webhook", "verify", "--secret", SECRET])
        .write_stdin("x")
        .assert()
        .code(2);
}

#[test]
fn secret_makes_a_usable_secret() {
    let out = evbus().args(["webhook", "secret"]).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let secret: Secret = text.trim().parse().unwrap();
    assert_eq!(secret.as_bytes().len(), 32);
}

/// A one-request receiver on loopback that verifies with `secret` and
/// answers 204, or 401 with the reason.
fn receiver(secret: &str) -> (String, thread::JoinHandle<String>) {
    let (url, server) = receiver_of(secret, 1);
    (url, thread::spawn(move || server.join().unwrap().remove(0)))
}

/// A receiver of `n` requests (one per connection); returns their bodies.
fn receiver_of(secret: &str, n: usize) -> (String, thread::JoinHandle<Vec<String>>) {
    let (listener, url, verifier) = listen(secret);
    let server = thread::spawn(move || {
        (0..n)
            .map(|_| {
                let (body, verdict) = serve_one(&listener, &verifier);
                assert!(verdict.is_ok(), "{verdict:?}");
                body
            })
            .collect()
    });
    (url, server)
}

/// A loopback listener, its `/hooks` URL and a verifier for `secret`.
fn listen(secret: &str) -> (TcpListener, String, Verifier) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    (listener, url, Verifier::new(secret.parse().unwrap()))
}

/// Accepts one request, verifies it and answers 204, or 401 with the
/// reason; returns its body and the verdict.
fn serve_one(listener: &TcpListener, verifier: &Verifier) -> (String, Result<(), String>) {
    let (mut stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = Vec::new();
    let mut len = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
            if k == "content-length" {
                len = v.parse().unwrap();
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let verdict = verifier
        .verify_parts(
            &get("webhook-id"),
            &get("webhook-timestamp"),
            &get("webhook-signature"),
            &body,
            now,
        )
        .map_err(|e| e.to_string());
    match &verdict {
        Ok(()) => write!(
            stream,
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
        )
        .unwrap(),
        Err(msg) => write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
            msg.len()
        )
        .unwrap(),
    }
    (String::from_utf8(body).unwrap(), verdict)
}

#[test]
fn sign_send_reaches_a_verifying_endpoint() {
    let (url, server) = receiver(SECRET);
    evbus()
        .args(["webhook", "sign", "--send", &url])
        .env("EVBUS_WEBHOOK_SECRET", SECRET)
        .write_stdin(BODY)
        .assert()
        .success()
        .stdout(predicate::str::contains("answered 204"));
    assert_eq!(server.join().unwrap(), BODY);

    // The endpoint holds another secret: refused, with the hint.
    let other = Secret::generate().to_whsec();
    let (url, server) = receiver_unchecked(&other);
    evbus()
        .args(["webhook", "sign", "--secret", SECRET, "--send", &url])
        .write_stdin(BODY)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("no signature matches"))
        .stderr(predicate::str::contains("answered 401"))
        .stderr(predicate::str::contains("same secret"));
    server.join().unwrap();

    // Nobody listens.
    let port = common::unused_port();
    evbus()
        .args([
            "webhook",
            "sign",
            "--secret",
            SECRET,
            "--send",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .write_stdin(BODY)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("could not reach"));
}

/// As [`receiver`], for a request that fails verification.
fn receiver_unchecked(secret: &str) -> (String, thread::JoinHandle<()>) {
    let (listener, url, verifier) = listen(secret);
    let server = thread::spawn(move || {
        let (_, verdict) = serve_one(&listener, &verifier);
        assert!(verdict.is_err(), "the request verified");
    });
    (url, server)
}

#[test]
fn replay_to_webhook_delivers_every_envelope_signed() {
    let dir = common::orders_journal(4); // 6 records
    let (url, server) = receiver_of(SECRET, 6);
    let attempts = dir.path().join("attempts");
    evbus()
        .args([
            "replay",
            "--to-webhook",
            &url,
            "--secret",
            SECRET,
            "--attempts",
        ])
        .arg(&attempts)
        .arg(dir.path())
        .assert()
        .success()
        .stderr(predicate::str::contains("replay report: read 6, sent 6"))
        .stderr(predicate::str::contains("handed over 6, delivered 6"))
        .stderr(predicate::str::contains("dead letters 0"));
    let mut bodies: Vec<serde_json::Value> = server
        .join()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    // Order within an endpoint is not kept: sort by time.
    bodies.sort_by_key(|b| b["time"].as_u64());
    assert_eq!(bodies[0]["type"], "orders.placed");
    assert_eq!(
        bodies[0]["data"],
        serde_json::json!({"order": 0, "total": 0})
    );
    assert_eq!(bodies[1]["type"], "orders.shipped");
    assert!(attempts.join(format!("{:020}.seg", 0)).exists());
    // A dry run sends nothing (no server), and the secret is required.
    evbus()
        .args([
            "replay",
            "--dry-run",
            "--to-webhook",
            "http://127.0.0.1:9/",
            "--secret",
            SECRET,
        ])
        .arg(dir.path())
        .assert()
        .success()
        .stderr(predicate::str::contains("would send 6"));
    // The secret in the environment does not get in a plain replay's way.
    evbus()
        .args(["replay", "--dry-run"])
        .arg(dir.path())
        .env("EVBUS_WEBHOOK_SECRET", SECRET)
        .assert()
        .success();
    evbus()
        .args(["replay", "--to-webhook", "http://127.0.0.1:9/"])
        .arg(dir.path())
        .env_remove("EVBUS_WEBHOOK_SECRET")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("secret"));
}
