import pytest

pytestmark = pytest.mark.redis


def test_set_get_expire(redis_client, redis_url):
    key = f"{redis_client.prefix}card:42:velocity"
    assert redis_client.set(key, "7") is True
    assert redis_client.get(key) == b"7"
    assert redis_client.incr(key) == 8
    redis_client.expire(key, 60)
    assert 0 < redis_client.ttl(key) <= 60
    # It is the server at the advertised address, not a stand-in.
    assert str(redis_client.info("server")["tcp_port"]) == redis_url.rsplit(":", 1)[1].split("/")[0]


def test_pipeline_is_atomic_per_test_prefix(redis_client):
    keys = [f"{redis_client.prefix}k{i}" for i in range(100)]
    with redis_client.pipeline(transaction=True) as pipe:
        for i, key in enumerate(keys):
            pipe.set(key, i)
        pipe.execute()
    assert [int(v) for v in redis_client.mget(keys)] == list(range(100))
    assert sorted(redis_client.scan_iter(match=f"{redis_client.prefix}*")) == sorted(
        k.encode() for k in keys
    )


def test_a_persistent_server_started_again_on_its_data_keeps_it():
    # The chaos soak restarts Redis this way (benchmarks/soak.py); a server without the
    # append-only file would come back empty.
    import redis

    from devservices import redis as redis_service

    first = redis_service.start(persist=True)
    try:
        client = redis.Redis.from_url(first.url)
        client.set("kept", "yes")
        client.zadd("window", {"payment-1": 1.0})
        client.close()
    finally:
        first.stop(keep_data=True)
    again = redis_service.start(workdir=first.workdir)
    try:
        client = redis.Redis.from_url(again.url)
        assert again.url == first.url
        assert client.get("kept") == b"yes"
        assert client.zrange("window", 0, -1) == [b"payment-1"]
        client.close()
    finally:
        again.stop()
