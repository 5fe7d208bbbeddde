data "aws_region" "this" {}

# The ECS worker returns right after RunTask; it learns that a flow-run task crashed or never
# started from ECS task state changes, which EventBridge drops into this queue.
resource "aws_sqs_queue" "events" {
  name                              = "${var.name}-ecs-events"
  message_retention_seconds         = 86400
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = var.tags
}

resource "aws_cloudwatch_event_rule" "task_state" {
  name        = "${var.name}-ecs-task-state"
  description = "ECS task state changes in ${var.cluster_name}, for the Prefect worker"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail        = { clusterArn = [var.cluster_arn] }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "queue" {
  rule = aws_cloudwatch_event_rule.task_state.name
  arn  = aws_sqs_queue.events.arn
}

data "aws_iam_policy_document" "queue" {
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.task_state.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy    = data.aws_iam_policy_document.queue.json
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "worker" {
  name               = "${var.name}-worker"
  description        = "Prefect ECS worker and the flow runs it starts (the release pipeline)"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_caller_identity" "this" {}

locals {
  # ARNs in this account and region: the cluster's tasks and services, Cloud Map services
  ecs_arn = "arn:aws:ecs:${data.aws_region.this.name}:${data.aws_caller_identity.this.account_id}"
  sd_arn  = "arn:aws:servicediscovery:${data.aws_region.this.name}:${data.aws_caller_identity.this.account_id}"
}

data "aws_iam_policy_document" "worker" {
  #checkov:skip=CKV_AWS_111: "*" only where IAM has no resource-level permission (task definition registration/listing, ECR login, Cloud Map listing and tagging, EC2 Describe*, registering scalable targets by ARNs that do not exist yet) or where the ecs:cluster condition confines it to our cluster
  #checkov:skip=CKV_AWS_356: as above; every "*" statement is either unrestrictable in IAM or conditioned on ecs:cluster
  statement {
    # RunTask's resource is the task definition; ecs:cluster confines it to our cluster.
    sid       = "RunInCluster"
    actions   = ["ecs:RunTask"]
    resources = ["${local.ecs_arn}:task-definition/*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }
  statement {
    # Listing has no resource; ecs:cluster is the only way to confine it.
    sid       = "ListInCluster"
    actions   = ["ecs:ListTasks", "ecs:ListServices"]
    resources = ["*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }
  statement {
    sid       = "TasksInCluster"
    actions   = ["ecs:StopTask", "ecs:DescribeTasks"]
    resources = ["${local.ecs_arn}:task/${var.cluster_name}/*"]
  }
  statement {
    sid = "ServicesInCluster"
    actions = [
      "ecs:CreateService", "ecs:DeleteService", "ecs:UpdateService", "ecs:DescribeServices",
    ]
    resources = ["${local.ecs_arn}:service/${var.cluster_name}/*"]
  }
  statement {
    # Tagging has no ecs:cluster key: it is confined by resource instead. A tagged RunTask,
    # CreateService or RegisterTaskDefinition is authorized for ecs:TagResource too.
    sid     = "TagInCluster"
    actions = ["ecs:TagResource", "ecs:ListTagsForResource"]
    resources = [
      "${local.ecs_arn}:task/${var.cluster_name}/*",
      "${local.ecs_arn}:service/${var.cluster_name}/*",
      "${local.ecs_arn}:task-definition/*",
    ]
  }
  statement {
    sid       = "RegisterTaskDefinitions"
    actions   = ["ecs:RegisterTaskDefinition", "ecs:DeleteTaskDefinitions"]
    resources = ["${local.ecs_arn}:task-definition/*"]
  }
  statement {
    # These task definition actions have no resource-level permissions in IAM.
    sid = "TaskDefinitions"
    actions = [
      "ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions",
      "ecs:ListTaskDefinitionFamilies",
    ]
    resources = ["*"]
  }
  statement {
    # Promotions assert each production service's target tracking (EcsProductionService);
    # a scalable target's ARN is assigned by AWS on registration, so only its prefix is named.
    sid = "ProductionAutoscaling"
    actions = [
      "application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy",
    ]
    resources = ["arn:aws:application-autoscaling:${data.aws_region.this.name}:${data.aws_caller_identity.this.account_id}:scalable-target/*"]
    condition {
      test     = "StringEquals"
      variable = "application-autoscaling:service-namespace"
      values   = ["ecs"]
    }
  }
  statement {
    # prefect-aws looks the VPC and subnets of a network configuration up before RunTask;
    # EC2 Describe* calls have no resource-level permissions.
    sid       = "DescribeNetwork"
    actions   = ["ec2:DescribeVpcs", "ec2:DescribeSubnets"]
    resources = ["*"]
  }
  statement {
    sid       = "TargetTrackingAlarms"
    actions   = ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"]
    resources = ["arn:aws:cloudwatch:*:*:alarm:TargetTracking-service/${var.cluster_name}/*"]
  }
  statement {
    # The load generator's role too: RunTask passes a task definition's roles to ECS.
    sid     = "PassOnlyOurRoles"
    actions = ["iam:PassRole"]
    resources = [
      var.execution_role_arn, var.task_role_arn, aws_iam_role.worker.arn, var.loadgen_task_role_arn,
    ]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
  statement {
    # servicediscovery:NamespaceArn exists on CreateService only.
    sid       = "ServiceDiscoveryCreate"
    actions   = ["servicediscovery:CreateService"]
    resources = [var.namespace_arn, "${local.sd_arn}:service/*"]
    condition {
      test     = "ArnEquals"
      variable = "servicediscovery:NamespaceArn"
      values   = [var.namespace_arn]
    }
  }
  statement {
    sid       = "ServiceDiscoveryNamespace"
    actions   = ["servicediscovery:GetNamespace"]
    resources = [var.namespace_arn]
  }
  statement {
    # These take a service ARN but no namespace condition: confined to this account's region.
    sid = "ServiceDiscoveryServices"
    actions = [
      "servicediscovery:DeleteService", "servicediscovery:GetService",
      "servicediscovery:DeregisterInstance",
    ]
    resources = ["${local.sd_arn}:service/*"]
  }
  statement {
    # No resource-level permissions: listing names and tags, tagging on creation.
    sid = "ServiceDiscoveryList"
    actions = [
      "servicediscovery:ListServices", "servicediscovery:ListInstances",
      "servicediscovery:ListTagsForResource", "servicediscovery:TagResource",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "Registry"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${var.bucket_arn}/*"]
  }
  statement {
    # fearless doctor --aws finds a flow-run task's log stream (run where flow runs run)
    sid       = "FindLogStreams"
    actions   = ["logs:DescribeLogStreams"]
    resources = ["arn:aws:logs:${data.aws_region.this.name}:${data.aws_caller_identity.this.account_id}:log-group:/${var.name}/*"]
  }
  statement {
    sid       = "RegistryList"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
  }
  statement {
    sid = "PushImages"
    actions = [
      "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
      "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage", "ecr:DescribeImages",
    ]
    resources = [var.repository_arn]
  }
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # no resource-level permissions
  }
  statement {
    sid       = "TaskEvents"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.events.arn]
  }
  statement {
    sid       = "UseKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "worker" {
  name   = "run-releases"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

data "aws_iam_policy_document" "read_auth_secret" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.prefect_auth_secret_arn]
  }
}

resource "aws_iam_role_policy" "read_auth_secret" {
  name   = "${var.name}-prefect-auth"
  role   = var.execution_role_name
  policy = data.aws_iam_policy_document.read_auth_secret.json
}

resource "aws_ecs_task_definition" "this" {
  family                   = "${var.name}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = "512"
  memory                   = "1024"
  execution_role_arn       = var.execution_role_arn
  task_role_arn            = aws_iam_role.worker.arn
  container_definitions = jsonencode([{
    name                   = "worker"
    image                  = var.worker_image
    essential              = true
    readonlyRootFilesystem = false
    command                = ["prefect", "worker", "start", "--pool", var.work_pool, "--type", "ecs"]
    environment = [
      { name = "PREFECT_API_URL", value = var.prefect_api_url },
      { name = "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME", value = aws_sqs_queue.events.name },
      { name = "AWS_REGION", value = data.aws_region.this.name },
    ]
    secrets = [{ name = "PREFECT_API_AUTH_STRING", valueFrom = var.prefect_auth_secret_arn }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = var.log_group_name
        "awslogs-region"        = data.aws_region.this.name
        "awslogs-stream-prefix" = "worker"
      }
    }
  }])
  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name                   = "${var.name}-worker"
  cluster                = var.cluster_arn
  task_definition        = aws_ecs_task_definition.this.arn
  desired_count          = 1
  launch_type            = "FARGATE"
  enable_execute_command = false
  propagate_tags         = "SERVICE"
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [var.security_group_id]
    assign_public_ip = false
  }
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  # ECS reads the auth secret with the execution role when the task starts.
  depends_on = [aws_iam_role_policy.read_auth_secret]
  tags       = var.tags
}
