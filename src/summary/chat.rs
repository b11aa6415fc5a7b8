//! The chat room (`compare --chat`): how each model shares its rooms, what it did with a slow
//! member, and what one way of sharing costs per delivery against another, from the cells'
//! figures and bootstraps.

use std::collections::BTreeMap;

use echo_server::chat::Sharing;
use echo_server::models::Model;

use super::bootstrap::{change_interval, figure, Bootstrap};
use crate::schema::{
    Cell, ChatModel, ServerSpec, SharingCost, SlowMember, SlowVerdict, Status, Workload,
};
use crate::workload::{CHAT_ROOM, CHAT_SLOW_MEMBERS};

/// The pairs whose server CPU per delivery is compared, (model, against): each differs from
/// the other in how it shares its rooms, and as little else as the registry allows. A thread
/// per member against a process per member (lock against IPC), and both against one loop
/// (single owner); then the same in Python; then a task per room against a lock per room in
/// one runtime each.
pub const COMPARED: [(&str, &str); 7] = [
    ("fork-per-client", "thread-per-client"),
    ("thread-per-client", "mio"),
    ("fork-per-client", "mio"),
    ("py-multiprocessing", "py-threading"),
    ("py-threading", "py-selectors"),
    ("py-multiprocessing", "py-selectors"),
    ("tokio-current-thread", "smol"),
];

/// Peak memory past which a server that kept its slow members is said to have grown: twice
/// what their queues may hold at `echo-server`'s default `--chat-queue`, per slow member.
pub const GREW_PER_SLOW_MEMBER_KIB: f64 = 2.0 * (echo_server::chat::DEFAULT_QUEUE / 1024) as f64;

/// How a server (a label: `thread-pool(64)`) shares its chat rooms, and one line on the way:
/// a model of the registry's or a Python model's; `None` for others.
pub fn sharing_of(label: &str) -> Option<(Sharing, &'static str)> {
    let name = ServerSpec::model_of(label);
    match Model::from_name(name) {
        Some(model) => model.chat_sharing(),
        None => echo_server::python::find(name)?.sharing,
    }
}

/// Each server that ran a chat workload, in `models`' order: its sharing and, where
/// `chat-slow` ran, its verdict on the slow member.
pub fn models(models: &[String], cells: &[Cell]) -> Vec<ChatModel> {
    let find = |model: &str, w: Workload| {
        let label = w.label();
        cells.iter().find(|c| c.model == model && c.label == label)
    };
    models
        .iter()
        .filter(|m| cells.iter().any(|c| c.model == **m && c.chat.is_some()))
        .filter_map(|m| {
            let (sharing, how) = sharing_of(m)?;
            let plain = Workload::Chat {
                room: CHAT_ROOM,
                connections: CHAT_SLOW_MEMBERS,
            };
            Some(ChatModel {
                model: m.clone(),
                sharing: sharing.name().to_owned(),
                how: how.to_owned(),
                slow: find(m, Workload::ChatSlow).map(|c| slow_member(c, find(m, plain))),
            })
        })
        .collect()
}

/// What a server did with `chat-slow`'s slow members (`slow`), its memory set against the
/// same server's in `chat-r16-c64` (`plain`).
pub fn slow_member(slow: &Cell, plain: Option<&Cell>) -> SlowMember {
    let growth = slow
        .peak_pss_kib
        .zip(plain.and_then(|p| p.peak_pss_kib))
        .map(|(s, p)| s - p);
    let chat = slow.chat.as_ref();
    let rooms = chat.map_or(0, |c| slow.connections / c.room.max(1));
    let slow_members = chat.map_or(0, |c| c.slow_per_room * rooms);
    let dropped = chat.map_or(0, |c| c.members_dropped);
    let lost = chat.map_or(0, |c| c.lost);
    let grew = growth.is_some_and(|g| g > GREW_PER_SLOW_MEMBER_KIB * slow_members as f64);
    let verdict = match () {
        _ if chat.is_none() || slow.status == Status::Failed => SlowVerdict::NoData,
        _ if dropped > slow_members as u64 => SlowVerdict::DroppedReaders,
        _ if lost > 0 => SlowVerdict::Stalled,
        _ if dropped > 0 => SlowVerdict::Dropped,
        _ if grew => SlowVerdict::MemoryGrew,
        _ if slow.connections_starved > 0 => SlowVerdict::NotServed,
        _ => SlowVerdict::Kept,
    };
    SlowMember {
        verdict,
        slow_members,
        dropped,
        lost,
        starved: slow.connections_starved,
        memory_growth_kib: growth,
    }
}

/// [`COMPARED`]'s pairs in every chat workload without a slow member where both ran: the
/// ratio of their server CPU per delivery, with its interval from the cells' bootstraps.
pub fn sharing_costs(
    cells: &[Cell],
    bootstraps: &BTreeMap<(String, String), Bootstrap>,
) -> Vec<SharingCost> {
    let mut costs = Vec::new();
    for w in Workload::chat()
        .into_iter()
        .filter(|w| *w != Workload::ChatSlow)
    {
        let label = w.label();
        let find = |model: &str| {
            cells
                .iter()
                .find(|c| c.model == model && c.label == label && c.status.has_figures())
        };
        for (model, against) in COMPARED {
            let (Some(a), Some(b)) = (find(model), find(against)) else {
                continue;
            };
            let cpu = |c: &Cell| c.server_cpu_us_per_msg.map(|s| s.median);
            let (Some(x), Some(y)) = (cpu(a), cpu(b)) else {
                continue;
            };
            if y <= 0.0 {
                continue;
            }
            let boot = |m: &str| bootstraps.get(&(m.to_owned(), label.clone()));
            let interval = match (boot(against), boot(model)) {
                (Some(base), Some(other)) => change_interval(base, other, figure::CPU_PER_MESSAGE)
                    .map(|[low, high]| [1.0 + low, 1.0 + high])
                    .map_err(|why| why.replacen("no CI: ", "no interval: ", 1)),
                _ => Err("no interval: a cell has no samples".to_owned()),
            };
            let name = |m: &str| sharing_of(m).map_or("", |s| s.0.name()).to_owned();
            costs.push(SharingCost {
                workload: label.clone(),
                model: model.to_owned(),
                sharing: name(model),
                against: against.to_owned(),
                against_sharing: name(against),
                ratio: x / y,
                ratio_ci: interval.as_ref().ok().copied(),
                why: interval.err(),
            });
        }
    }
    costs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ChatFigures, Spread};

    fn cell(model: &str, w: Workload, pss_kib: f64, chat: ChatFigures) -> Cell {
        Cell {
            model: model.to_owned(),
            workload: w.name().to_owned(),
            label: w.label(),
            status: Status::Ok,
            connections: CHAT_SLOW_MEMBERS,
            peak_pss_kib: Some(pss_kib),
            chat: Some(chat),
            ..Cell::default()
        }
    }

    fn slow(dropped: u64, lost: u64) -> ChatFigures {
        ChatFigures {
            room: CHAT_ROOM,
            slow_per_room: 1,
            members_dropped: dropped,
            lost,
            ..ChatFigures::default()
        }
    }

    #[test]
    fn a_slow_member_is_judged_by_what_the_readers_lost_what_was_dropped_and_memory() {
        let plain_w = Workload::Chat {
            room: CHAT_ROOM,
            connections: CHAT_SLOW_MEMBERS,
        };
        let plain = cell("m", plain_w, 10_000.0, ChatFigures::default());
        let judge = |c: &Cell| slow_member(c, Some(&plain));
        let dropped = cell("m", Workload::ChatSlow, 12_000.0, slow(4, 0));
        let s = judge(&dropped);
        assert_eq!(s.verdict, SlowVerdict::Dropped);
        assert_eq!((s.slow_members, s.dropped, s.lost), (4, 4, 0));
        assert_eq!(s.memory_growth_kib, Some(2_000.0));
        // Readers missed deliveries: the room stopped, whatever else happened.
        let stalled = cell("m", Workload::ChatSlow, 12_000.0, slow(4, 10));
        assert_eq!(judge(&stalled).verdict, SlowVerdict::Stalled);
        // Readers closed too (more closed than there are slow members): not a stall.
        let readers = cell("m", Workload::ChatSlow, 12_000.0, slow(7, 10));
        assert_eq!(judge(&readers).verdict, SlowVerdict::DroppedReaders);
        // Kept, within what 4 queues of 1 MiB may hold twice over (8 MiB), then past it.
        let kept = cell("m", Workload::ChatSlow, 10_000.0 + 8_000.0, slow(0, 0));
        assert_eq!(judge(&kept).verdict, SlowVerdict::Kept);
        let grew = cell("m", Workload::ChatSlow, 10_000.0 + 8_300.0, slow(0, 0));
        assert_eq!(judge(&grew).verdict, SlowVerdict::MemoryGrew);
        // An iterative server never lets the slow members in.
        let mut alone = cell("m", Workload::ChatSlow, 10_000.0, slow(0, 0));
        alone.connections_starved = 60;
        alone.status = Status::Starved;
        assert_eq!(judge(&alone).verdict, SlowVerdict::NotServed);
        let mut failed = cell("m", Workload::ChatSlow, 10_000.0, slow(0, 0));
        failed.status = Status::Failed;
        assert_eq!(judge(&failed).verdict, SlowVerdict::NoData);
        assert_eq!(slow_member(&dropped, None).memory_growth_kib, None);
    }

    #[test]
    fn every_model_that_serves_the_chat_room_names_its_sharing() {
        for m in Model::ALL {
            let tcp = m.transport() == echo_server::models::Transport::Tcp;
            assert_eq!(sharing_of(m.name()).is_some(), tcp, "{}", m.name());
        }
        assert_eq!(sharing_of("thread-pool(64)").unwrap().0, Sharing::Lock);
        assert_eq!(sharing_of("fork-per-client").unwrap().0, Sharing::Ipc);
        assert_eq!(sharing_of("py-selectors").unwrap().0, Sharing::Owner);
        assert_eq!(sharing_of("py-udp"), None);
        assert_eq!(sharing_of("nginx"), None);
        for (model, against) in COMPARED {
            let (a, b) = (sharing_of(model).unwrap(), sharing_of(against).unwrap());
            assert_ne!(
                a.0, b.0,
                "{model} against {against} compares one way of sharing"
            );
        }
    }

    #[test]
    fn sharing_costs_are_ratios_of_cpu_per_delivery_where_both_ran() {
        let w = Workload::Chat {
            room: 128,
            connections: 128,
        };
        let with_cpu = |model: &str, cpu: f64| Cell {
            server_cpu_us_per_msg: Spread::of([cpu]),
            ..cell(model, w, 0.0, ChatFigures::default())
        };
        let cells = [
            with_cpu("fork-per-client", 0.9),
            with_cpu("thread-per-client", 0.3),
            with_cpu("py-threading", 2.0),
        ];
        let costs = sharing_costs(&cells, &BTreeMap::new());
        assert_eq!(costs.len(), 1, "{costs:?}");
        let c = &costs[0];
        assert_eq!(
            (c.model.as_str(), c.against.as_str()),
            ("fork-per-client", "thread-per-client")
        );
        assert_eq!(
            (c.sharing.as_str(), c.against_sharing.as_str()),
            ("IPC", "lock")
        );
        assert!((c.ratio - 3.0).abs() < 1e-9);
        assert_eq!(c.ratio_ci, None);
        assert!(c.why.as_deref().unwrap().starts_with("no interval"));
    }
}
