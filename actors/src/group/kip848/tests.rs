use super::*;

fn topics(count: i32) -> Topics {
    Topics::from([("t".to_string(), count)])
}

fn join_request(id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: id.to_string(),
        member_epoch: JOIN_EPOCH,
        rebalance_timeout_ms: 30_000,
        subscribed_topics: Some(vec!["t".into()]),
        owned: Some(Vec::new()),
        ..HeartbeatRequest::default()
    }
}

fn beat_request(id: &str, epoch: i32, owned: &[TopicPartition]) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: id.to_string(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.to_vec()),
        ..HeartbeatRequest::default()
    }
}

/// A client as librdkafka behaves: it holds what it was last given and
/// reports it with every heartbeat.
#[derive(Debug, Default)]
struct Client {
    id: String,
    epoch: i32,
    owned: Vec<TopicPartition>,
}

impl Client {
    fn join(group: &mut ConsumerGroup, id: &str, topics: &Topics, now: u64) -> Client {
        let response = group.heartbeat(join_request(id), topics, now);
        assert_eq!(response.error, None, "{response:?}");
        Client {
            id: response.member_id,
            epoch: response.member_epoch,
            owned: response.assignment.unwrap_or_default(),
        }
    }

    fn beat(&mut self, group: &mut ConsumerGroup, topics: &Topics, now: u64) -> HeartbeatResponse {
        let response =
            group.heartbeat(beat_request(&self.id, self.epoch, &self.owned), topics, now);
        if response.error.is_none() {
            self.epoch = response.member_epoch;
            if let Some(assignment) = &response.assignment {
                self.owned = assignment.clone();
            }
        }
        response
    }
}

fn tps(partitions: &[i32]) -> Vec<TopicPartition> {
    partitions.iter().map(|p| ("t".to_string(), *p)).collect()
}

/// No partition is ever held by two clients.
fn assert_exclusive(clients: &[&Client]) {
    let mut seen = BTreeSet::new();
    for c in clients {
        for tp in &c.owned {
            assert!(seen.insert(tp.clone()), "{tp:?} held twice: {clients:?}");
        }
    }
}

#[test]
fn a_lone_member_gets_everything_at_epoch_one() {
    let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
    let a = Client::join(&mut group, "", &topics(3), 0);
    assert!(
        !a.id.is_empty(),
        "the coordinator names a member without an id"
    );
    assert_eq!(a.epoch, 1);
    assert_eq!(a.owned, tps(&[0, 1, 2]));
    assert_eq!(group.state(), ConsumerGroupState::Stable);
}

#[test]
fn a_second_member_gets_partitions_only_after_the_first_lets_go() {
    let t = topics(4);
    let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
    let mut a = Client::join(&mut group, "a", &t, 0);
    let mut b = Client::join(&mut group, "b", &t, 10);
    assert_eq!(b.epoch, 2);
    assert!(b.owned.is_empty(), "a still holds everything");
    assert_eq!(group.state(), ConsumerGroupState::Reconciling);

    let r = a.beat(&mut group, &t, 20);
    assert_eq!(r.member_epoch, 1, "a keeps its epoch until it revoked");
    assert_eq!(a.owned.len(), 2);
    assert_exclusive(&[&a, &b]);

    b.beat(&mut group, &t, 30);
    assert!(b.owned.is_empty(), "a has not confirmed the revocation yet");

    let r = a.beat(&mut group, &t, 40);
    assert_eq!(r.member_epoch, 2);
    b.beat(&mut group, &t, 50);
    assert_eq!(b.owned.len(), 2);
    assert_exclusive(&[&a, &b]);
    assert_eq!(group.state(), ConsumerGroupState::Stable);
}

#[test]
fn a_member_that_leaves_hands_its_partitions_over() {
    let t = topics(4);
    let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
    let mut a = Client::join(&mut group, "a", &t, 0);
    let mut b = Client::join(&mut group, "b", &t, 0);
    for now in 1..4 {
        a.beat(&mut group, &t, now);
        b.beat(&mut group, &t, now);
    }
    assert_eq!((a.owned.len(), b.owned.len()), (2, 2));
    let left = group.heartbeat(beat_request("b", LEAVE_EPOCH, &[]), &t, 5);
    assert_eq!((left.error, left.member_epoch), (None, LEAVE_EPOCH));
    a.beat(&mut group, &t, 6);
    assert_eq!(a.owned, tps(&[0, 1, 2, 3]));
}

#[test]
fn a_silent_member_expires_after_the_session_timeout() {
    let t = topics(2);
    let config = ConsumerGroupConfig::default();
    let session = config.session_timeout_ms;
    let mut group = ConsumerGroup::new(config);
    let mut a = Client::join(&mut group, "a", &t, 0);
    let mut b = Client::join(&mut group, "b", &t, 0);
    a.beat(&mut group, &t, 1);
    a.beat(&mut group, &t, 2);
    b.beat(&mut group, &t, 2);
    assert_eq!(group.next_deadline(), Some(2 + session));
    a.beat(&mut group, &t, session);
    group.tick(session + 2);
    assert_eq!(
        b.beat(&mut group, &t, session + 3).error,
        Some(ResponseError::UnknownMemberId)
    );
    a.beat(&mut group, &t, session + 4);
    assert_eq!(a.owned, tps(&[0, 1]));
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_fenced() {
    let t = topics(2);
    let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
    let mut a = Client::join(&mut group, "a", &t, 0);
    let _b = Client::join(&mut group, "b", &t, 0);
    // a is told to give one up but keeps reporting both.
    let r = group.heartbeat(beat_request("a", a.epoch, &tps(&[0, 1])), &t, 100);
    assert_eq!(r.assignment.as_ref().map(Vec::len), Some(1));
    group.tick(100 + 30_000);
    assert_eq!(
        a.beat(&mut group, &t, 30_101).error,
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn a_static_member_back_within_its_session_keeps_its_partitions() {
    let t = topics(4);
    let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
    let static_join = |id: &str| HeartbeatRequest {
        instance_id: Some("instance-1".into()),
        ..join_request(id)
    };
    let first = group.heartbeat(static_join("old"), &t, 0);
    let mut b = Client::join(&mut group, "b", &t, 0);
    let mut a = Client {
        id: first.member_id,
        epoch: first.member_epoch,
        owned: first.assignment.unwrap_or_default(),
    };
    for now in 1..4 {
        a.beat(&mut group, &t, now);
        b.beat(&mut group, &t, now);
    }
    let epoch = group.group_epoch();
    let kept = a.owned.clone();
    let away = group.heartbeat(beat_request(&a.id, STATIC_LEAVE_EPOCH, &kept), &t, 5);
    assert_eq!(away.member_epoch, STATIC_LEAVE_EPOCH);
    let busy = group.heartbeat(static_join("other"), &t, 5);
    assert_eq!(busy.error, None, "the instance was released by its leave");
    assert_eq!(busy.assignment.unwrap_or_default(), kept);
    assert_eq!(group.group_epoch(), epoch, "no rebalance");
    let again = group.heartbeat(static_join("third"), &t, 6);
    assert_eq!(again.error, Some(ResponseError::UnreleasedInstanceId));
}

#[test]
fn epochs_and_assignors_are_checked() {
    let t = topics(1);
    let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
    let a = Client::join(&mut group, "a", &t, 0);
    assert_eq!(
        group
            .heartbeat(beat_request("a", a.epoch + 5, &[]), &t, 1)
            .error,
        Some(ResponseError::FencedMemberEpoch)
    );
    assert_eq!(
        group.heartbeat(beat_request("zz", 1, &[]), &t, 1).error,
        Some(ResponseError::UnknownMemberId)
    );
    let odd = HeartbeatRequest {
        server_assignor: Some("magic".into()),
        ..join_request("c")
    };
    assert_eq!(
        group.heartbeat(odd, &t, 1).error,
        Some(ResponseError::UnsupportedAssignor)
    );
    let bare = HeartbeatRequest {
        subscribed_topics: None,
        ..join_request("d")
    };
    assert_eq!(
        group.heartbeat(bare, &t, 1).error,
        Some(ResponseError::InvalidRequest)
    );
}

#[test]
fn range_is_chosen_when_members_ask_for_it() {
    let t = topics(4);
    let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
    let range = |id: &str| HeartbeatRequest {
        server_assignor: Some("range".into()),
        ..join_request(id)
    };
    group.heartbeat(range("a"), &t, 0);
    assert_eq!(group.describe().assignor, Assignor::Range);
}

#[test]
fn new_partitions_are_assigned_at_a_new_epoch() {
    let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
    let mut a = Client::join(&mut group, "a", &topics(2), 0);
    let r = a.beat(&mut group, &topics(3), 1);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(a.owned, tps(&[0, 1, 2]));
}

#[test]
fn a_pattern_subscribes_to_every_whole_matching_topic_as_topics_come() {
    let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
    let mut existing = Topics::from([
        ("orders-eu".to_string(), 2),
        ("orders-us".to_string(), 1),
        ("old-orders-eu".to_string(), 3),
        ("payments".to_string(), 1),
    ]);
    let join = HeartbeatRequest {
        subscribed_topics: None,
        subscribed_regex: Some("orders-.*".into()),
        ..join_request("a")
    };
    let response = group.heartbeat(join, &existing, 0);
    assert_eq!(response.error, None, "{response:?}");
    let mut a = Client {
        id: response.member_id,
        epoch: response.member_epoch,
        owned: response.assignment.unwrap_or_default(),
    };
    let topics_of = |owned: &[TopicPartition]| -> BTreeSet<String> {
        owned.iter().map(|tp| tp.0.clone()).collect()
    };
    assert_eq!(a.owned.len(), 3);
    assert_eq!(
        topics_of(&a.owned),
        BTreeSet::from(["orders-eu".to_string(), "orders-us".to_string()])
    );
    existing.insert("orders-asia".to_string(), 2);
    let before = a.epoch;
    a.beat(&mut group, &existing, 1);
    assert!(a.epoch > before);
    assert_eq!(a.owned.len(), 5);
    assert_eq!(
        group.describe().members[0].subscribed_regex.as_deref(),
        Some("orders-.*")
    );
    // An empty pattern clears it: nothing is left to consume.
    let clear = HeartbeatRequest {
        subscribed_regex: Some(String::new()),
        ..beat_request(&a.id, a.epoch, &a.owned)
    };
    let response = group.heartbeat(clear, &existing, 2);
    assert_eq!(response.assignment, Some(Vec::new()));
}

#[test]
fn an_invalid_pattern_is_refused() {
    let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
    let join = HeartbeatRequest {
        subscribed_regex: Some("orders-(".into()),
        ..join_request("a")
    };
    let response = group.heartbeat(join, &topics(1), 0);
    assert_eq!(
        response.error,
        Some(ResponseError::InvalidRegularExpression)
    );
    assert!(group.is_empty());
    let a = Client::join(&mut group, "a", &topics(1), 0);
    let change = HeartbeatRequest {
        subscribed_regex: Some("[".into()),
        ..beat_request(&a.id, a.epoch, &a.owned)
    };
    assert_eq!(
        group.heartbeat(change, &topics(1), 1).error,
        Some(ResponseError::InvalidRegularExpression)
    );
}

#[test]
fn commits_are_checked_against_the_member_epoch() {
    let t = topics(1);
    let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
    assert_eq!(
        group.validate_commit("", -1),
        Ok(()),
        "an empty group takes simple commits"
    );
    assert_eq!(group.validate_commit("self-managed", -1), Ok(()));
    let a = Client::join(&mut group, "a", &t, 0);
    assert_eq!(group.validate_commit("a", a.epoch), Ok(()));
    assert_eq!(
        group.validate_commit("a", a.epoch + 1),
        Err(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        group.validate_commit("b", 1),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        group.validate_commit("", -1),
        Err(ResponseError::UnknownMemberId)
    );
}

/// Random joins, leaves, crashes and heartbeats: no partition is ever held
/// twice, and once everyone heartbeats the group settles with every
/// partition assigned and balanced.
#[test]
fn random_membership_never_double_assigns_and_settles() {
    let mut seed = 0x848u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..200 {
        let t = topics(1 + next(10) as i32);
        let mut group = ConsumerGroup::new(ConsumerGroupConfig::default());
        let mut clients: Vec<Client> = Vec::new();
        let mut now = 0;
        for step in 0..60 {
            now += 100;
            match next(6) {
                0 if clients.len() < 6 => {
                    clients.push(Client::join(&mut group, &format!("m{step}"), &t, now))
                }
                1 if !clients.is_empty() => {
                    let c = clients.remove(next(clients.len() as u64) as usize);
                    group.heartbeat(beat_request(&c.id, LEAVE_EPOCH, &c.owned), &t, now);
                }
                _ => {
                    for c in clients.iter_mut() {
                        if next(3) > 0 {
                            c.beat(&mut group, &t, now);
                        }
                    }
                }
            }
            assert_exclusive(&clients.iter().collect::<Vec<_>>());
        }
        for _ in 0..4 {
            now += 100;
            for c in clients.iter_mut() {
                assert_eq!(c.beat(&mut group, &t, now).error, None);
            }
        }
        assert_exclusive(&clients.iter().collect::<Vec<_>>());
        if !clients.is_empty() {
            assert_eq!(group.state(), ConsumerGroupState::Stable);
            let held: usize = clients.iter().map(|c| c.owned.len()).sum();
            assert_eq!(held as i32, t["t"]);
            let loads: Vec<usize> = clients.iter().map(|c| c.owned.len()).collect();
            assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1);
        }
    }
}
