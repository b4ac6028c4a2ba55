"""Writes the two small results files in tau2-bench's layout (made up here, not copied: 5 airline tasks, 4 trials,
two models, rewards chosen by hand). Run from the repository root: python tests/data/tau2_style/make_fixture.py"""
import json
import random

POLICY = "# Airline agent policy\nAs an airline agent, you can help users book, modify, or cancel flight reservations. Before taking any consequential action, list the details and obtain explicit user confirmation (yes)."
TOOL_DEFS = [
    {"type": "function", "function": {"name": n, "description": d, "parameters": {"type": "object", "properties": p, "required": list(p)}}}
    for n, d, p in [
        ("get_user_details", "Get the details of a user.", {"user_id": {"type": "string"}}),
        ("get_reservation_details", "Get the details of a reservation.", {"reservation_id": {"type": "string"}}),
        ("cancel_reservation", "Cancel the whole reservation.", {"reservation_id": {"type": "string"}}),
        ("transfer_to_human_agents", "Transfer the user to a human agent, with a summary.", {"summary": {"type": "string"}}),
    ]]
TASKS = ["0", "1", "2", "3", "4"]


def sim(rng, model, task, trial, reward, termination, extra_lookup=False, handoff=False):
    uid = f"user_{task}"
    rid = f"R{task}X{trial}"
    t = 0
    msgs = []
    def add(role, content=None, tool_calls=None, **kw):
        nonlocal t
        m = {"role": role, "content": content, "tool_calls": tool_calls, "turn_idx": t,
             "timestamp": f"2025-06-1{task}T10:{t:02d}:00.000000"}
        if role == "assistant":
            m["cost"] = 0.0012
            m["usage"] = {"completion_tokens": 40 + t, "prompt_tokens": 2500 + 120 * t}
        if role == "user":
            m["cost"] = 0.0003
            m["usage"] = {"completion_tokens": 20, "prompt_tokens": 800 + 50 * t}
        m.update(kw)
        msgs.append(m)
        t += 1
    add("assistant", "Hi! How can I help you today?")
    add("user", rng.choice(["I need to cancel my reservation.", "Hello, please cancel my trip.", "Hi, I want to cancel a booking."]))
    add("assistant", "Sure. Could you give me your user id and the reservation id?")
    add("user", f"My user id is {uid} and the reservation is {rid}.")
    add("assistant", None, [{"id": f"call_{t}", "name": "get_user_details", "arguments": {"user_id": uid}, "requestor": "assistant"}])
    add("tool", json.dumps({"user_id": uid, "membership": "gold", "reservations": [rid]}), id=f"call_{t - 1}", requestor="assistant", error=False)
    if extra_lookup:
        add("assistant", None, [{"id": f"call_{t}", "name": "get_reservation_details", "arguments": {"reservation_id": rid}, "requestor": "assistant"}])
        add("tool", json.dumps({"reservation_id": rid, "insurance": "no", "cabin": "economy"}), id=f"call_{t - 1}", requestor="assistant", error=False)
    if handoff:
        add("assistant", None, [{"id": f"call_{t}", "name": "transfer_to_human_agents", "arguments": {"summary": "cancel outside policy"}, "requestor": "assistant"}])
        add("tool", "Transfer successful", id=f"call_{t - 1}", requestor="assistant", error=False)
        add("assistant", "YOU ARE BEING TRANSFERRED TO A HUMAN AGENT. PLEASE HOLD ON.")
        add("user", "###TRANSFER###")
    else:
        add("assistant", f"I will cancel reservation {rid}. Do you confirm (yes)?")
        add("user", "Yes.")
        add("assistant", None, [{"id": f"call_{t}", "name": "cancel_reservation", "arguments": {"reservation_id": rid}, "requestor": "assistant"}])
        add("tool", json.dumps({"reservation_id": rid, "status": "cancelled"}), id=f"call_{t - 1}", requestor="assistant", error=False)
        add("assistant", "Your reservation is cancelled. Anything else?")
        if termination == "user_stop":
            add("user", "No, thank you. ###STOP###")
    agent_cost = round(sum(m.get("cost", 0) for m in msgs if m["role"] == "assistant"), 6)
    user_cost = round(sum(m.get("cost", 0) for m in msgs if m["role"] == "user"), 6)
    return {"id": f"{model}-{task}-{trial}", "task_id": task, "trial": trial, "seed": 300 + trial,
            "start_time": "2025-06-10T10:00:00", "end_time": "2025-06-10T10:01:00",
            "duration": round(20 + rng.random() * 40, 3), "termination_reason": termination,
            "agent_cost": agent_cost, "user_cost": user_cost,
            "reward_info": {"reward": reward, "reward_basis": ["DB", "COMMUNICATE"], "db_check": {"db_match": reward >= 1, "db_reward": reward}},
            "messages": msgs}


def results(model, rewards, seed):
    rng = random.Random(seed)
    sims = []
    for task in TASKS:
        for trial in range(4):
            reward = rewards[task][trial]
            termination = "user_stop"
            handoff = False
            if task == "3" and trial % 2 == 1:
                handoff = True
            if task == "4" and trial == 2:
                termination = "too_many_errors"
            if task == "2" and trial == 3:
                termination = "max_steps"
            sims.append(sim(rng, model, task, trial, reward, termination, extra_lookup=(model.endswith("mini") and trial % 2 == 0), handoff=handoff))
    return {"timestamp": "2025-06-10T12:00:00",
            "info": {"git_commit": "fixture", "num_trials": 4, "max_steps": 200, "max_errors": 10, "seed": 300,
                     "user_info": {"implementation": "user_simulator", "llm": "gpt-4.1", "llm_args": {"temperature": 0.0}},
                     "agent_info": {"implementation": "llm_agent", "llm": model, "llm_args": {"temperature": 0.0}},
                     "environment_info": {"domain_name": "airline", "policy": POLICY, "tool_defs": TOOL_DEFS}},
            "tasks": [{"id": t, "user_scenario": {"instructions": {"task_instructions": f"Cancel reservation of user_{t}."}}} for t in TASKS],
            "simulations": sims}


teacher = {"0": [1.0, 1.0, 1.0, 1.0], "1": [1.0, 0.0, 1.0, 1.0], "2": [0.0, 1.0, 0.9999999, 0.0],
           "3": [1.0, 0.0, 0.0, 1.0], "4": [0.0, 0.0, 0.0, 1.0]}
student = {"0": [1.0, 1.0, 0.0, 1.0], "1": [0.0, 0.0, 1.0, 0.0], "2": [0.0, 0.0, 0.0, 0.0],
           "3": [1.0, 0.0, 1.0, 0.0], "4": [0.5, 0.0, 0.0, 0.0]}
if __name__ == "__main__":
    for model, rewards, seed in (("gpt-4.1", teacher, 1), ("gpt-4.1-mini", student, 2)):
        with open(f"tests/data/tau2_style/airline_{model}.json", "w") as fh:
            json.dump(results(model, rewards, seed), fh, indent=1)
