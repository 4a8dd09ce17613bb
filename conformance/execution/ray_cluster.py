"""Reaching a Ray cluster: the bounded probe of an address before Ray starts (its GCS must answer as
one within PROBE_TIMEOUT_S), and the local instance of a run's own, on loopback only.  The Ray
executor (ray_executor.py) connects through these; nothing here starts an actor.
"""
from __future__ import annotations

import os

PROBE_TIMEOUT_S = 5.0


def _temp_dir() -> str:
    """Where a local Ray instance keeps its session: under TMPDIR as Ray does, unless that path is
    too long for the sockets Ray makes there (107 bytes for an AF_UNIX path; Ray adds ~70)."""
    import tempfile

    folder = os.path.join(tempfile.gettempdir(), "ray")
    return folder if len(folder) <= 36 else "/tmp/ray"


class Unanswered(Exception):
    """The GCS at an address did not answer as one (`why`: what happened instead)."""

    def __init__(self, why: str, hint: bool = True):
        super().__init__(why)
        self.why, self.hint = why, hint  # hint: say to start the cluster or give its address


def _split(address: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of HOST:PORT, [V6]:PORT or ray://HOST:PORT; None for "auto" and other forms."""
    import re

    m = re.fullmatch(r"(?:(ray)://)?(\[[^\]]+\]|[^:\[\]/]+):([0-9]{1,5})", address)
    return (m[1] or "", m[2], int(m[3])) if m else None


def _is_loopback(host: str) -> bool:
    import ipaddress

    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _auth_metadata() -> tuple:
    """The token header Ray's own clients send (token authentication on, a token found), else none."""
    try:
        from ray._raylet import AuthenticationTokenLoader

        loader = AuthenticationTokenLoader.instance()
        return tuple(loader.get_token_for_http_header().items()) if loader.has_token() else ()
    except Exception:  # another Ray's API: ask without a token
        return ()


def probe(target: str, timeout: float, client: bool = False):
    """Ask the GCS at HOST:PORT for its head node (NodeInfoGcsService.GetAllNodeInfo, the call Ray's
    own clients make), bounded by `timeout` seconds: its GcsNodeInfo (None: no head listed), or
    Unanswered.  Ray's own connection retries an address for ~10 minutes whatever answers there.
    `client`: a Ray Client server (ray://), which speaks gRPC but not the GCS's services."""
    import grpc
    from ray.core.generated import gcs_pb2
    from ray.core.generated import gcs_service_pb2 as pb

    request = pb.GetAllNodeInfoRequest(state_filter=gcs_pb2.GcsNodeInfo.ALIVE,
                                       node_selectors=[pb.GetAllNodeInfoRequest.NodeSelector(is_head_node=True)])
    channel = grpc.insecure_channel(target)
    try:
        call = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetAllNodeInfo",
                                   request_serializer=pb.GetAllNodeInfoRequest.SerializeToString,
                                   response_deserializer=pb.GetAllNodeInfoReply.FromString)
        reply = call(request, timeout=timeout, metadata=_auth_metadata())
    except grpc.RpcError as exc:
        code, details = exc.code(), (exc.details() or "").strip()
        if client and code == grpc.StatusCode.UNIMPLEMENTED:
            return None  # a gRPC server answered (a Ray Client server has no GCS service)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise Unanswered(f"no answer as a Ray cluster within {timeout:g}s (a port that accepts connections "
                             "but is not a Ray cluster's GCS?)") from None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            if not _auth_metadata():
                raise Unanswered("the cluster uses token authentication: run with RAY_AUTH_MODE=token and its token "
                                 "in ~/.ray/auth_token or RAY_AUTH_TOKEN", hint=False) from None
            raise Unanswered(f"the cluster refuses this machine's Ray token ({details[:120]})", hint=False) from None
        if code == grpc.StatusCode.UNAVAILABLE and "refused" in details.lower():
            raise Unanswered("nothing answers there: connection refused") from None
        if code == grpc.StatusCode.UNIMPLEMENTED:
            raise Unanswered("a gRPC server answers that is not a Ray cluster's GCS") from None
        raise Unanswered(f"it does not answer as a Ray cluster ({code.name}: {details[:160]})") from None
    finally:
        channel.close()
    return reply.node_info_list[0] if reply.node_info_list else None


def _loopback_only(ray) -> None:
    """This process and the Ray processes it starts take 127.0.0.1 as the node's address, so every
    server of a local instance listens on loopback only (Ray binds its gRPC servers to 127.0.0.1
    when that is the node's address).  Ray resolves 127.0.0.1 to the machine's network address
    unless "Ray clusters" are off, as on macOS and Windows (ray_constants.ENABLE_RAY_CLUSTER): off
    for the processes to come, and in this one, which has read it already."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
