"""Median latency of single moto calls from boto3 (the floor under the Lambda benchmark):
.venv/bin/python bench/moto_latency.py"""
import boto3, subprocess, time, socket, os, statistics
import sys
port=int(sys.argv[1]) if len(sys.argv) > 1 else 5123
p=subprocess.Popen([".venv/bin/moto_server","-H","127.0.0.1","-p",str(port)],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try: socket.create_connection(("127.0.0.1",port)).close(); break
        except OSError: time.sleep(0.05)
    kw=dict(endpoint_url=f"http://127.0.0.1:{port}",region_name="us-east-1",aws_access_key_id="t",aws_secret_access_key="t")
    d=boto3.client("dynamodb",**kw); sns=boto3.client("sns",**kw)
    arn=sns.create_topic(Name="x")["TopicArn"]
    d.create_table(TableName="t",BillingMode="PAY_PER_REQUEST",KeySchema=[{"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}],AttributeDefinitions=[{"AttributeName":"pk","AttributeType":"S"},{"AttributeName":"sk","AttributeType":"S"}])
    def t(f,n=30):
        xs=[]
        for i in range(n):
            s=time.perf_counter(); f(i); xs.append((time.perf_counter()-s)*1000)
        return statistics.median(xs)
    print("query", t(lambda i: d.query(TableName="t",KeyConditionExpression="pk = :p",ExpressionAttributeValues={":p":{"S":"MAINT"}})))
    print("put", t(lambda i: d.put_item(TableName="t",Item={"pk":{"S":"E"},"sk":{"S":str(i)}})))
    print("transact4", t(lambda i: d.transact_write_items(TransactItems=[{"Put":{"TableName":"t","Item":{"pk":{"S":"X"},"sk":{"S":f"{i}-{k}"}}}} for k in range(4)])))
    print("update", t(lambda i: d.update_item(TableName="t",Key={"pk":{"S":"E"},"sk":{"S":"1"}},UpdateExpression="ADD a :one",ExpressionAttributeValues={":one":{"N":"1"}})))
    print("publish", t(lambda i: sns.publish(TopicArn=arn,Subject="s",Message="m")))
finally:
    p.terminate()
