"""tycho_testbed: a real Kubernetes control plane and a simulated node, for testing spawners.

``cluster`` runs etcd, kube-apiserver, kube-scheduler and kube-controller-manager (real v1.20
binaries built from Debian's source package) on loopback; ``node`` is the one simulated part,
a node agent that plays the kubelet with local processes in network namespaces.
"""
