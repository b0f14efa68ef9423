// Package translate turns a loaded module (statefun/module) plus the
// embedded functions (dispatch.Registry) into the StateFun job graph:
//
//	ingress source + router (chained) --keyed(id)--> functions (feedback head + dispatcher)
//	functions --keyed(id)--> feedback tail ==in memory==> functions     (the loop, co-located)
//	functions --rebalance--> egress sink, one vertex per egress
//
// It owns the router (raw connector records -> one envelope per target) and
// the egress sink operator. Every configuration problem it can see is
// reported before anything starts.
package translate
