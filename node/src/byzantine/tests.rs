use super::*;
use crate::finality::quorum::{Certificate, Vote};
use crate::finality::Record;
use crate::identity::Keypair;
use crate::ledger::tx::TxId;
use crate::p2p::message::Message;

fn vote(key: &Keypair) -> Effect {
    Effect::Broadcast(LedgerMessage::Vote(Vote::new(
        key,
        "net",
        TxId([7; 32]),
        true,
    )))
}

fn on(behaviours: &[Behaviour]) -> Misbehaviour {
    Misbehaviour {
        behaviours: behaviours.iter().copied().collect(),
        ..Misbehaviour::honest()
    }
}

fn batch(key: &Keypair) -> Vec<Effect> {
    vec![
        Effect::Persist(Record::Finalized(certificate())),
        vote(key),
        Effect::Broadcast(LedgerMessage::Certificate(certificate().into())),
        Effect::Send(key.id(), LedgerMessage::Certificates(vec![certificate()])),
        Effect::Broadcast(LedgerMessage::Have(vec![])),
    ]
}

fn certificate() -> Certificate {
    Certificate {
        tx: crate::ledger::tx::Transaction {
            inputs: vec![],
            outputs: vec![],
            memo: 0,
        },
        approvals: vec![],
    }
}

#[test]
fn an_honest_node_sends_everything_as_it_is() {
    let key = Keypair::from_seed([1; 32]);
    let out = bend(&Misbehaviour::honest(), batch(&key));
    assert_eq!(out.now, batch(&key));
    assert!(out.held.is_empty() && !out.garbage);
}

#[test]
fn each_behaviour_bends_only_what_it_names_and_never_the_records() {
    let key = Keypair::from_seed([1; 32]);
    let kinds = |fx: &[Effect]| -> Vec<&'static str> {
        fx.iter()
            .map(|e| match e {
                Effect::Persist(_) => "persist",
                Effect::ServeSnapshot { .. } => "serve",
                Effect::Installed { .. } => "installed",
                Effect::Broadcast(m) | Effect::Send(_, m) | Effect::Relay(_, m) => m.kind(),
            })
            .collect()
    };
    let mute = bend(&on(&[Behaviour::Mute]), batch(&key));
    assert_eq!(kinds(&mute.now), ["persist"]);
    let withhold = bend(&on(&[Behaviour::WithholdCertificates]), batch(&key));
    assert_eq!(kinds(&withhold.now), ["persist", "vote", "have"]);
    let delay = bend(&on(&[Behaviour::DelayVotes]), batch(&key));
    assert_eq!(kinds(&delay.held), ["vote"]);
    assert_eq!(
        kinds(&delay.now),
        ["persist", "certificate", "certificates", "have"]
    );
    let garbage = bend(&on(&[Behaviour::GarbageFrames]), batch(&key));
    assert!(garbage.garbage && garbage.now.len() == 5);
    assert!(
        !bend(&on(&[Behaviour::GarbageFrames]), vec![]).garbage,
        "nothing sent, no garbage"
    );
}

#[test]
fn a_bad_signature_vote_no_longer_verifies_and_garbage_does_not_decode() {
    let key = Keypair::from_seed([1; 32]);
    let Effect::Broadcast(LedgerMessage::Vote(honest)) = vote(&key) else {
        unreachable!()
    };
    assert!(honest.verify("net"));
    let out = bend(&on(&[Behaviour::BadSignatures]), vec![vote(&key)]);
    let [Effect::Broadcast(LedgerMessage::Vote(bad))] = &out.now[..] else {
        panic!("{out:?}")
    };
    assert!(!bad.verify("net"));
    assert!(Message::decode(&garbage()).is_err());
}

#[test]
fn the_seam_reads_back_what_was_set_and_parses_kebab_names() {
    let seam = Byzantine::default();
    assert_eq!(seam.get(), Misbehaviour::honest());
    let m: Misbehaviour =
        serde_json::from_str(r#"{"behaviours":["delay-votes","mute"],"delay_ms":500}"#).unwrap();
    seam.set(m.clone());
    assert!(seam.is(Behaviour::Mute) && seam.is(Behaviour::DelayVotes));
    assert_eq!(seam.get().delay_ms, 500);
    let err = serde_json::from_str::<Misbehaviour>(r#"{"behaviours":["loud"]}"#).unwrap_err();
    assert!(err.to_string().contains("mute"), "names the choices: {err}");
    for b in Behaviour::ALL {
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, format!("\"{}\"", b.label()));
    }
}
