"""Replay: back-test a candidate model version on recorded traffic before it takes a single call.

``modelplatform replay MODEL --candidate VERSION`` (:mod:`modelplatform.cli.replay_command`) reads the
recorded inputs (:mod:`.source`), runs them through the candidate in a child process with only the
environment loading needs (:mod:`.process`, :mod:`.child`), compares each outcome with the recorded one
(:mod:`.compare`), stores every run and row (:mod:`.tables`, :mod:`.sink`), summarises
(:mod:`.summary`, :mod:`.run`) and gates CI on the differences (:mod:`.gates`). docs/models.md,
"Before you ship: replay", shows it on the demo.
"""
