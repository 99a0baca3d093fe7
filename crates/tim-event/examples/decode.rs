//! Reads records' values from standard input, one per line, and prints what each
//! event says: `kafka-console-consumer.sh ... | cargo run -p tim-event --example decode`.

use std::io::BufRead;

use tim_event::{decode, Data};

fn main() {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match decode(line.as_bytes()) {
            Ok(event) => match event.data {
                Data::Sent(m) => println!("{} sent {:?} to {}", m.from, m.msg_key, m.to),
                Data::Withdrawn(m) => println!("{} recalled {}", m.from, m.msg_key),
                Data::GroupSent(m) => println!("{:?} wrote in {}", m.from, m.group_id),
                other => println!("{}: {other:?}", event.event_type),
            },
            Err(error) => eprintln!("not an event of the contract: {error}"),
        }
    }
}
