"""Decodes a Perfetto trace with Perfetto's own schema (the PyPI `perfetto`
package's generated perfetto_trace_pb2) and prints, as one JSON document,
what Perfetto's trace processor derives from it: process and thread names,
each thread's time per state, each CPU's time per thread that ran on it,
and the track-event slices with their arguments and the slices their flows
lead to (the CPU holders', category "cpu holder", listed only as targets).

The trace processor itself cannot run here (it downloads its binary at run
time), so its rules for the scheduler events are applied below as it
documents and implements them: sched_switch ends `prev`'s Running with the
state its prev_state says (Linux 4.4 layout when the trace names no
kernel: 0 R, 0x1 S, 0x2 D, 0x800 R+) and starts `next`'s Running;
sched_waking makes a thread that is not running Runnable; a
sched_blocked_reason with io_wait marks the thread's current D as I/O.
A thread's last state, still open when the trace ends, has no duration.
A flow goes from the slice whose beginning lists its id in flow_ids to the
slice whose end lists it in terminating_flow_ids, as the trace processor
binds flow ids to the slice an event opens or closes.

Usage: python3 perfetto_decode.py TRACE
"""
import json
import sys
from collections import defaultdict

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb


def prev_state_name(raw):
    if raw & 0x800:
        return "R+"
    if raw == 0:
        return "R"
    if raw & 0x2:
        return "D"
    if raw & 0x1:
        return "S"
    return "?"


def main(path):
    trace = pb.Trace()
    with open(path, "rb") as f:
        trace.ParseFromString(f.read())

    processes, threads = {}, {}
    sched = []  # (ts, order, cpu, event)
    tracks = {}  # uuid -> tid
    parents = {}
    slice_events = []  # (ts, order, uuid, type, name, args)
    for order, packet in enumerate(trace.packet):
        if packet.HasField("process_tree"):
            for p in packet.process_tree.processes:
                processes[p.pid] = p.cmdline[0] if p.cmdline else ""
            for t in packet.process_tree.threads:
                threads[t.tid] = {"tgid": t.tgid, "name": t.name}
        if packet.HasField("ftrace_events"):
            bundle = packet.ftrace_events
            for i, e in enumerate(bundle.event):
                sched.append((e.timestamp, order, i, bundle.cpu, e))
        if packet.HasField("track_descriptor"):
            d = packet.track_descriptor
            if d.HasField("thread"):
                tracks[d.uuid] = d.thread.tid
            if d.HasField("parent_uuid"):
                parents[d.uuid] = d.parent_uuid
        if packet.HasField("track_event"):
            e = packet.track_event
            args = {a.name: annotation(a) for a in e.debug_annotations}
            flows = list(e.flow_ids) + list(e.terminating_flow_ids)
            slice_events.append((packet.timestamp, order, e.track_uuid, e.type, e.name, args,
                                 list(e.categories), flows))

    sched.sort(key=lambda x: (x[0], x[1], x[2]))
    open_state = {}  # tid -> [state, since]
    states = defaultdict(lambda: defaultdict(int))
    on_cpu = defaultdict(lambda: defaultdict(int))
    cpu_current = {}  # cpu -> (tid, since)

    def enter(tid, state, ts):
        if tid == 0:
            return
        if tid in open_state:
            old, since = open_state[tid]
            states[tid][old] += ts - since
        open_state[tid] = [state, ts]

    for ts, _, _, cpu, e in sched:
        if e.HasField("sched_switch"):
            s = e.sched_switch
            enter(s.prev_pid, prev_state_name(s.prev_state), ts)
            enter(s.next_pid, "Running", ts)
            if cpu in cpu_current:
                tid, since = cpu_current[cpu]
                on_cpu[cpu][tid] += ts - since
            cpu_current[cpu] = (s.next_pid, ts)
        elif e.HasField("sched_waking"):
            w = e.sched_waking
            if open_state.get(w.pid, [None])[0] != "Running":
                enter(w.pid, "R", ts)
        elif e.HasField("sched_blocked_reason"):
            b = e.sched_blocked_reason
            if b.io_wait and open_state.get(b.pid, [None])[0] == "D":
                open_state[b.pid][0] = "D (I/O)"

    stacks = defaultdict(list)
    slices, holders = [], []
    flow_source, flow_target = {}, {}
    for ts, _, uuid, kind, name, args, categories, flows in sorted(slice_events, key=lambda x: (x[0], x[1])):
        if kind == pb.TrackEvent.TYPE_SLICE_BEGIN:
            stacks[uuid].append((ts, name, args, categories, flows))
        elif kind == pb.TrackEvent.TYPE_SLICE_END and stacks[uuid]:
            start, name, args, categories, begin_flows = stacks[uuid].pop()
            track = uuid
            while track not in tracks and track in parents:
                track = parents[track]
            tid = tracks.get(track)
            s = {"tid": tid, "name": name, "ts": start, "dur": ts - start, "args": args}
            if "cpu holder" in categories:
                s["tgid"] = threads.get(tid, {}).get("tgid")
                holders.append(s)
                for flow in flows:
                    flow_target[flow] = s
            else:
                s["flows_to"] = []
                slices.append(s)
                for flow in begin_flows:
                    flow_source[flow] = s
    for flow, source in flow_source.items():
        if flow in flow_target:
            source["flows_to"].append(flow_target[flow])

    print(json.dumps({
        "processes": {str(k): v for k, v in processes.items()},
        "threads": {str(k): v for k, v in threads.items()},
        "states": {str(t): dict(s) for t, s in states.items()},
        "cpus": {str(c): {str(t): ns for t, ns in d.items()} for c, d in on_cpu.items()},
        "slices": slices,
    }))


def annotation(a):
    if a.HasField("string_value"):
        return a.string_value
    if a.HasField("int_value"):
        return a.int_value
    if a.HasField("uint_value"):
        return a.uint_value
    if a.HasField("bool_value"):
        return a.bool_value
    if a.HasField("double_value"):
        return a.double_value
    if a.dict_entries:
        return {d.name: annotation(d) for d in a.dict_entries}
    return [annotation(v) for v in a.array_values]


if __name__ == "__main__":
    main(sys.argv[1])
