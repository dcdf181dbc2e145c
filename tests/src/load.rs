//! Load for the benchmarks: concurrent clients repeating one request, and percentiles of
//! what they measured.

use std::time::{Duration, Instant};

/// `clients` concurrent clients, each sending `GET url` with `token` `requests` times; each
/// answer must succeed with a body of more than `min_body` bytes. The latencies, sorted.
pub async fn get_latencies(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    clients: usize,
    requests: usize,
    min_body: usize,
) -> Vec<Duration> {
    let mut running = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (http, url, token) = (http.clone(), url.to_owned(), token.to_owned());
        running.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests);
            for _ in 0..requests {
                let started = Instant::now();
                let response = http
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("an answer");
                assert!(response.status().is_success());
                let body = response.bytes().await.expect("a body");
                latencies.push(started.elapsed());
                assert!(body.len() > min_body, "{} bytes", body.len());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(clients * requests);
    for client in running {
        latencies.extend(client.await.expect("a client"));
    }
    latencies.sort();
    latencies
}

/// The `p` percentile (0 to 1) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
