//! TLS by rustls as the URL's `sslmode` asks, against a throwaway cluster that takes TLS
//! connections only (its certificate names 127.0.0.1, signed by a private CA).

use std::path::Path;
use std::process::Command;

use failover_store_postgres::Postgres;
use failover_store_postgres::throwaway::Cluster;

fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split(' '))
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The error and its sources, as `{:#}` shows them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_kept_as_libpq_means_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::write(d.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").expect("writes");
    openssl(
        d,
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ca -keyout ca.key -out ca.pem",
    );
    openssl(
        d,
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other -keyout other.key -out other.pem",
    );
    openssl(
        d,
        "req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout db.key -out db.csr",
    );
    openssl(
        d,
        "x509 -req -in db.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out db.pem",
    );
    let pg = Cluster::start_tls(&d.join("db.pem"), &d.join("db.key"));
    let base = pg.create("tls");
    let ca = d.join("ca.pem").display().to_string();
    let other = d.join("other.pem").display().to_string();
    let by_name = base.replace("127.0.0.1", "localhost");
    let connect = |url: String| async move { Postgres::connect(&url, 2).await };
    for (url, what) in [
        (
            format!("{base}?sslmode=verify-full&sslrootcert={ca}"),
            "verify-full",
        ),
        (
            format!("{by_name}?sslmode=verify-ca&sslrootcert={ca}"),
            "verify-ca, another name",
        ),
        (
            format!("{base}?sslmode=require"),
            "require, nothing checked",
        ),
        (
            format!("{base}?sslmode=require&sslrootcert={ca}"),
            "require with the CA",
        ),
        (base.clone(), "prefer, the default"),
    ] {
        if let Err(e) = connect(url).await {
            panic!("{what}: {}", chain(&e));
        }
    }
    for (url, what, says) in [
        (
            format!("{base}?sslmode=verify-full&sslrootcert={other}"),
            "another CA",
            "certificate",
        ),
        (
            format!("{by_name}?sslmode=verify-full&sslrootcert={ca}"),
            "another name",
            "certificate",
        ),
        (
            format!("{base}?sslmode=require&sslrootcert={other}"),
            "require, another CA",
            "certificate",
        ),
        (
            format!("{base}?sslmode=disable"),
            "no TLS, refused by the server",
            "pg_hba.conf",
        ),
    ] {
        let e = connect(url).await.expect_err(what);
        let text = chain(&e);
        assert!(text.contains(says), "{what}: {text}");
        assert!(
            text.contains("127.0.0.1") || text.contains("localhost"),
            "names the server: {text}"
        );
    }
}
