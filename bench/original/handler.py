"""A faithful re-implementation of the original Python Lambda handler (../shared/seed.md,
docs/DESIGN.md section 1), for benchmarks only: clusters and patch days are code, week of month
counts Monday-started weeks (days before the first Monday are week 0), day of week 0-6 with
Monday = 0, only the reporting node's day is checked, in the Lambda's UTC date, and every call
creates a new boto3 SNS client and publishes one of two fixed texts."""
import calendar
import json
from datetime import date

import boto3


class PatchCluster:
    def __init__(self, primaryServer, secondaryServer):
        self.primary = primaryServer
        self.secondary = secondaryServer
        self.patching = {}

    def setPatching(self, hostname, weekOfMonth, dayInt):
        self.patching[hostname] = (weekOfMonth, dayInt)

    def patchingNotification(self, hostname, arn, subject):
        if hostname not in (self.primary, self.secondary):
            return
        other = self.secondary if hostname == self.primary else self.primary
        today = date.today()
        first_monday = next(d for d in range(1, 8) if calendar.weekday(today.year, today.month, d) == 0)
        week = 0 if today.day < first_monday else (today.day - first_monday) // 7 + 1
        if self.patching.get(hostname) == (week, today.weekday()):
            message = (other + " has failed over.  Server " + hostname + " is currently the active host.\n\n"
                       "This was likley due to patching.  DevOps will follow up during regular business hours to verify.")
        else:
            message = (other + " has failed over.  Server " + hostname + " is currently the active host.\n\n"
                       "There was no known patching causing this event.  DevOps will investigate.")
        sns = boto3.client('sns')
        sns.publish(TopicArn=arn, Subject=subject, Message=message)


def lambda_handler(event, context):
    hostname = json.loads(json.loads(json.dumps(event))['body'])['hostname']  # DO NOT CHANGE THIS
    arn = event.get('arn', 'arn:aws:sns:us-east-1:123456789012:failovers')  # the bench passes its topic
    subject = 'Customer Failover Notification'

    cluster = PatchCluster(hostname, hostname + "-b")
    cluster.setPatching(hostname, 2, 2)  # Second Wednesday of the month
    cluster.setPatching(hostname + "-b", 3, 2)

    cluster.patchingNotification(hostname, arn, subject)

    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": "Lambda Execution Successful"
    }
