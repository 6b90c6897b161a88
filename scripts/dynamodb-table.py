"""Creates the DynamoDB table as deploy/cloudformation.yaml defines it, on any endpoint
(moto in the tests, DynamoDB Local, or a real account for a manual try):

    python scripts/dynamodb-table.py ENDPOINT_URL TABLE

The template is the only definition of the table's keys and indexes; the tests create
theirs with this script, so they test what a stack deploys.
"""

import pathlib
import sys

import boto3
import yaml


class _Template(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Ref, !Sub, ...) as plain values."""


_Template.add_multi_constructor("!", lambda loader, suffix, node: None)


def main(endpoint: str, table: str) -> None:
    template = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "cloudformation.yaml"
    props = yaml.load(template.read_text(), Loader=_Template)["Resources"]["Table"]["Properties"]
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_table(
        TableName=table,
        BillingMode=props["BillingMode"],
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
    )
    client.update_time_to_live(
        TableName=table, TimeToLiveSpecification=props["TimeToLiveSpecification"]
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
