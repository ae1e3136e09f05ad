//! A small W3C WebDriver client (over reqwest) driving headless Chromium through chromedriver,
//! for the console's browser tests. Small on purpose: navigate, find by CSS, click, type, read,
//! run a script, take a screenshot.

use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where Debian's packages put them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The WebDriver key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session, and the chromedriver process behind it (killed on drop).
pub struct Browser {
    http: reqwest::Client,
    session_url: String,
    driver: Child,
    screenshots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; screenshots go to `screenshots`.
    pub async fn start(screenshots: &Path) -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)"
            );
        }
        std::fs::create_dir_all(screenshots).unwrap();
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        for attempt in 0.. {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready {
                let status: Value = r.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(attempt < 100, "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        } } });
        let created: Value =
            http.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}"));
        Browser {
            http,
            session_url: format!("{base}/session/{session}"),
            driver,
            screenshots: screenshots.to_owned(),
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.session_url));
        if let Some(body) = body {
            request = request.json(&body);
        } else if method == reqwest::Method::POST {
            request = request.json(&json!({}));
        }
        let reply: Value = request.send().await.expect("webdriver answers").json().await.expect("webdriver JSON");
        if let Some(error) = reply["value"]["error"].as_str() {
            panic!("webdriver {method} {path}: {error}: {}", reply["value"]["message"]);
        }
        reply["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (up to 5 s) for a navigation that a key press started to land on a URL ending in
    /// `suffix`; returns the URL. Clicks wait for their navigation; key presses do not.
    pub async fn wait_for_url_ending(&self, suffix: &str) -> String {
        for _ in 0..50 {
            let url = self.current_url().await;
            if url.ends_with(suffix) && self.script("return document.readyState;").await == "complete" {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the browser did not reach a URL ending in {suffix}; it is at {}", self.current_url().await)
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The first element matching `css` (panics when there is none).
    pub async fn find(&self, css: &str) -> String {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({ "using": "css selector", "value": css }))).await;
        found[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("no element {css}")).to_owned()
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        let found =
            self.call(reqwest::Method::POST, "/elements", Some(json!({ "using": "css selector", "value": css }))).await;
        found.as_array().map(Vec::len).unwrap_or(0)
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), None).await;
    }

    /// Clicks something that loads a new page (a link, a submit button) and waits until the
    /// new page has loaded: chromedriver does not always wait for a navigation a click starts.
    pub async fn follow(&self, css: &str) {
        self.script("window.__before_navigation = true; return null;").await;
        self.click(css).await;
        for _ in 0..100 {
            let loaded = self
                .script("return window.__before_navigation === undefined && document.readyState === 'complete';")
                .await;
            if loaded == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("clicking {css} did not load a new page");
    }

    /// Replaces the text of an input.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/clear"), None).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({ "text": text }))).await;
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{element}/text"), None).await.as_str().unwrap_or("").into()
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{element}/attribute/{name}"), None)
            .await
            .as_str()
            .map(str::to_owned)
    }

    pub async fn is_enabled(&self, css: &str) -> bool {
        let element = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{element}/enabled"), None).await == true
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub async fn script(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": [] }))).await
    }

    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({ "width": width, "height": height }))).await;
    }

    /// Saves a PNG of the page as `<name>.png` in the screenshot folder.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(encoded.as_str().unwrap_or("")).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    pub async fn quit(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}
