"""Phased Instruction Fine-Tuning training code: template, data, builtin tiny model, callbacks, job protocol."""
