#!/usr/bin/env python3
"""
tests/bench/stocksim.py - a simulation for the note "One brand beyond one machine"
(tests/bench/scale-note.md, issue 24 item 5): a hot SKU's stock split into buckets
owned by different hosts, each buyer always on the same bucket.

    python3 tests/bench/stocksim.py                # the table in the note
    HOSTS=4 STOCK=20000 BUYERS=300000 python3 tests/bench/stocksim.py

A discrete-event simulation, deterministic for a seed. BUYERS arrive in a burst
(a flash sale's first second, exponential gaps at ARRIVAL_RATE per second); each
asks for one unit. A buyer is hashed to one of BUCKETS buckets; a bucket lives on
one host, which serves a buy in SERVICE_US of its one core (the measured
flash-sale buy: ~66 us a buy at 15k buys/s on one core, tests/bench/README.md).
Per-user limits stay local: a buyer always lands on the same bucket.

Policies for a bucket that runs dry while others still hold units:
- none:      refuse (sold out here): units stay stranded elsewhere
- rebalance: the host asks the fullest other bucket for half its units, one
             round trip of RTT_US plus a commit on both sides (two SERVICE_US);
             buys on the dry bucket wait for it (queued), then go on
Printed per policy: units sold, buyers refused while units remained anywhere
(unfair refusals), transfers, the p99 wait of a buy, and the time to sell out.
"""
import heapq
import os
import random

SEED = int(os.environ.get("SEED", "7"))
STOCK = int(os.environ.get("STOCK", "10000"))
BUYERS = int(os.environ.get("BUYERS", "200000"))
ARRIVAL_RATE = float(os.environ.get("ARRIVAL_RATE", "200000"))   # buyers per second
SERVICE_US = float(os.environ.get("SERVICE_US", "66"))
RTT_US = float(os.environ.get("RTT_US", "300"))
HOSTS_LIST = [int(x) for x in os.environ.get("HOSTS", "1,2,4,8").split(",")]
BUCKETS_PER_HOST = int(os.environ.get("BUCKETS_PER_HOST", "1"))


def simulate(hosts, policy, seed=SEED):
    rng = random.Random(seed)
    nb = hosts * BUCKETS_PER_HOST
    stock = [STOCK // nb + (1 if i < STOCK % nb else 0) for i in range(nb)]
    host_of = [i % hosts for i in range(nb)]
    free_at = [0.0] * hosts           # when each host's core is next free (us)
    refill_until = [0.0] * nb         # a transfer into the bucket in flight until then
    events = []
    t = 0.0
    for b in range(BUYERS):
        t += rng.expovariate(ARRIVAL_RATE) * 1e6
        heapq.heappush(events, (t, b, rng.randrange(nb)))
    sold = refused = unfair = transfers = 0
    waits = []
    last_sale = 0.0
    while events:
        at, b, k = heapq.heappop(events)
        h = host_of[k]
        start = max(at, free_at[h], refill_until[k])
        if stock[k] == 0 and policy == "rebalance":
            donor = max(range(nb), key=lambda i: stock[i])
            if stock[donor] > 0:
                give = (stock[donor] + 1) // 2
                stock[donor] -= give
                # the donor commits the give, the round trip, the bucket commits the take
                free_at[host_of[donor]] = max(free_at[host_of[donor]], start) + SERVICE_US
                start += RTT_US + 2 * SERVICE_US
                refill_until[k] = start
                stock[k] += give
                transfers += 1
        done = start + SERVICE_US
        free_at[h] = done
        waits.append(done - at)
        if stock[k] > 0:
            stock[k] -= 1
            sold += 1
            last_sale = done
        else:
            refused += 1
            if sum(stock) > 0:
                unfair += 1
    waits.sort()
    return {"sold": sold, "refused": refused, "unfair": unfair, "transfers": transfers,
            "p99_ms": waits[int(len(waits) * 0.99)] / 1000, "sold_out_ms": last_sale / 1000,
            "stranded": sum(stock)}


def main():
    print("command: HOSTS=%s STOCK=%d BUYERS=%d ARRIVAL_RATE=%d SERVICE_US=%g RTT_US=%g BUCKETS_PER_HOST=%d "
          "python3 tests/bench/stocksim.py (seed %d)" % (",".join(map(str, HOSTS_LIST)), STOCK, BUYERS,
                                                          ARRIVAL_RATE, SERVICE_US, RTT_US, BUCKETS_PER_HOST, SEED))
    print("| hosts | policy | sold | stranded | refused while stock remained | transfers | p99 wait | last unit sold at |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for hosts in HOSTS_LIST:
        for policy in ("none", "rebalance") if hosts > 1 else ("none",):
            r = simulate(hosts, policy)
            print("| %d | %s | %d | %d | %d | %d | %.1f ms | %.0f ms |" % (
                hosts, policy, r["sold"], r["stranded"], r["unfair"], r["transfers"], r["p99_ms"], r["sold_out_ms"]))


if __name__ == "__main__":
    main()
