//! A cookie-keeping HTTP client for the console, reading the hidden form fields out of the
//! HTML the way a browser would submit them. Redirects are not followed, so tests see them.

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

/// A page as the console sent it.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub html: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> &str {
        self.header(LOCATION.as_str()).unwrap_or_default()
    }

    /// The `value` of the first `<input name="{name}">` on the page.
    pub fn input(&self, name: &str) -> String {
        input_value(&self.html, name).unwrap_or_else(|| panic!("no input {name:?} on the page:\n{}", self.html))
    }

    /// The `value` of input `name` inside the form posting to `action`.
    pub fn form_input(&self, action: &str, name: &str) -> String {
        let at = self
            .html
            .find(&format!("action=\"{action}\""))
            .unwrap_or_else(|| panic!("no form posting to {action:?} on the page:\n{}", self.html));
        input_value(&self.html[at..], name).unwrap_or_else(|| panic!("form {action:?} has no input {name:?}"))
    }

    /// Every `Set-Cookie` header, whole.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    }

    pub fn assert_contains(&self, text: &str) -> &Self {
        assert!(self.html.contains(text), "page lacks {text:?}:\n{}", self.html);
        self
    }
}

/// The value of an input, as maud writes it (`name="..." ... value="..."` on one tag).
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\"");
    let at = html.find(&needle)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let value_at = tag.find("value=\"")? + "value=\"".len();
    let value_end = value_at + tag[value_at..].find('"')?;
    Some(tag[value_at..value_end].replace("&amp;", "&").replace("&quot;", "\""))
}

/// One browser: its cookies and the server it talks to.
pub struct Console {
    base: String,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
    /// Extra headers on every request (such as `X-Forwarded-Proto`).
    pub extra_headers: Vec<(&'static str, &'static str)>,
}

impl Console {
    pub fn new(base: &str) -> Console {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Console { base: base.to_owned(), http, cookies: Vec::new(), extra_headers: Vec::new() }
    }

    fn remember(&mut self, page: &Page) {
        for cookie in page.set_cookies() {
            let pair = cookie.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else { continue };
            self.cookies.retain(|(n, _)| n != name);
            let expired = cookie.contains("Max-Age=0");
            if !expired {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(n, _)| n != name);
        self.cookies.push((name.to_owned(), value.to_owned()));
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let mut request = request;
        if !self.cookies.is_empty() {
            let header = self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ");
            request = request.header(COOKIE, header);
        }
        for (name, value) in &self.extra_headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let html = response.text().await.unwrap_or_default();
        let page = Page { status, headers, html };
        self.remember(&page);
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(fields);
        self.send(request).await
    }

    /// Signs in with `api_key` through the sign-in form; returns the answer to the form.
    pub async fn sign_in(&mut self, api_key: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.input("csrf");
        self.post("/console/sign-in", &[("csrf", &csrf), ("api_key", api_key)]).await
    }
}
