use std::collections::HashMap;
use std::sync::Arc;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_callbacks_all_arrive_exactly_once() {
    let app = Arc::new(spawn_app().await);

    let answers = futures_join_all((0..1000).map(|i| {
        let app = Arc::clone(&app);
        async move {
            let body = format!(
                r#"{{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"u{i}","To_Account":"v","MsgKey":"load-{i}",
                "MsgBody":[{{"MsgType":"TIMTextElem","MsgContent":{{"Text":"消息 {i} 🚀"}}}}]}}"#
            );
            app.callback("C2C.CallbackAfterSendMsg", &body).await.status
        }
    }))
    .await;

    assert!(
        answers.iter().all(|s| *s == 200),
        "every callback answered 200"
    );
    let records = read_records(&app.topic, 1000).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &records {
        *seen.entry(r.key.clone().unwrap()).or_default() += 1;
        let i: usize = r.key.as_ref().unwrap()["load-".len()..].parse().unwrap();
        assert_eq!(r.value["data"]["body"][0]["text"], format!("消息 {i} 🚀"));
    }
    assert_eq!(seen.len(), 1000);
    assert!(seen.values().all(|n| *n == 1));
    assert_eq!(record_count(&app.topic).await, 1000);
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
