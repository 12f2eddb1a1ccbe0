"""Migration replay harness: record what a legacy service answers, replay it against pregbridge, compare.

Teams moving an EPJ off the old PREG/AR/HL7 service record real request/answer pairs through a
recording proxy (:mod:`server.replay.recorder`) into a corpus (:mod:`server.replay.corpus`), then replay
the corpus against pregbridge (:mod:`server.replay.runner`) and compare the answers canonically
(:mod:`server.replay.compare_xml`, :mod:`server.replay.compare_hl7`) before they switch. The command line
is :mod:`server.replay.cli`; the shipped example corpus is made by :mod:`server.replay.make_corpus`.
docs/replay.md is the user's guide.
"""
