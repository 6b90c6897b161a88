//! Prints a large synthetic inventory: `cargo run --release -p failover-core --example
//! gen_inventory -- CLUSTERS > big.toml`. Half the clusters have two nodes, half three
//! (10,000 clusters = 25,000 nodes); each cluster has a window and so does its first node,
//! across several zones and window forms.

/// The inventory text for `clusters` clusters.
pub fn inventory(clusters: usize) -> String {
    const ZONES: [&str; 4] = ["Europe/Berlin", "America/New_York", "UTC", "Asia/Tokyo"];
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let mut s = String::with_capacity(clusters * 400);
    s.push_str("[defaults]\ntime_zone = \"UTC\"\n\n");
    for c in 0..100 {
        s.push_str(&format!(
            "[[customers]]\nname = \"customer{c}\"\ntime_zone = \"{}\"\n\n",
            ZONES[c % 4]
        ));
    }
    for i in 0..clusters {
        let nodes = if i % 2 == 0 { 2 } else { 3 };
        let list: Vec<String> = (0..nodes)
            .map(|n| format!("\"node{i}-{n}.c{}.example\"", i % 100))
            .collect();
        s.push_str(&format!(
            "[[clusters]]\nname = \"cluster{i}\"\ncustomer = \"customer{}\"\nnodes = [{}]\n\n",
            i % 100,
            list.join(", ")
        ));
        let day = DAYS[i % 7];
        let window = match i % 4 {
            0 => format!(
                "week = {}\nday = \"{day}\"\nstart = \"22:00\"\nduration = \"4h\"",
                i % 4 + 1
            ),
            1 => format!("days = [\"{day}\"]\nstart = \"02:00\"\nduration = \"2h\""),
            2 => format!(
                "day_of_month = {}\nstart = \"01:00\"\nduration = \"3h\"",
                i % 28 + 1
            ),
            _ => {
                "week = 2\nday = \"tue\"\nthen = \"saturday\"\nstart = \"06:00\"\nduration = \"3h\""
                    .to_owned()
            }
        };
        s.push_str(&format!(
            "[[windows]]\nname = \"w\"\ncluster = \"cluster{i}\"\n{window}\n\n"
        ));
        s.push_str(&format!(
            "[[windows]]\nname = \"patch\"\nnode = \"node{i}-0.c{}.example\"\nweek = {}\nday = {}\ncalendar = \"monday-weeks\"\n\n",
            i % 100,
            i % 4 + 1,
            i % 7
        ));
    }
    s
}

#[allow(dead_code)]
fn main() {
    let clusters = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    print!("{}", inventory(clusters));
}
