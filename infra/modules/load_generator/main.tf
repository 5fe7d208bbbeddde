# The AWS backend's load generator (fearless.loadtest.ecs_fleet): a Locust master and its
# workers, ECS tasks of this definition that a release's flow run starts with RunTask, in the
# flow-run tasks' security group. Each fetches the run's traffic from the registry bucket,
# `<s3_prefix>/<release>/<run>/traffic.jsonl`; the master puts its reports under `.../reports/`.

data "aws_region" "this" {}

locals {
  # Locust's port on the master (fearless.loadtest.fleet.MASTER_PORT): workers connect to it.
  master_port = 5557
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

resource "aws_iam_role" "this" {
  name               = "${var.name}-loadgen"
  description        = "Locust master and workers: read a run's traffic, write its reports"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "ReadTraffic"
    actions   = ["s3:GetObject"]
    resources = ["${var.bucket_arn}/${var.s3_prefix}/*"]
  }
  statement {
    sid       = "WriteReports"
    actions   = ["s3:PutObject"]
    resources = ["${var.bucket_arn}/${var.s3_prefix}/*/reports/*"]
  }
  statement {
    # The bucket is encrypted with this key: reading decrypts, writing asks for a data key (a
    # multipart upload's completion decrypts it). Through S3 only: the key also guards logs,
    # images and the event queue.
    sid       = "UseKeyThroughS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.this.name}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "traffic-and-reports"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.task.json
}

# Only with an image: the flow image holds the task's entry point, and may be set after a
# first apply (the role exists either way, so the worker's policy does not change with it).
resource "aws_ecs_task_definition" "this" {
  count                    = var.image == "" ? 0 : 1
  family                   = "${var.name}-loadgen"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = var.execution_role_arn
  task_role_arn            = aws_iam_role.this.arn
  # Fargate task storage: the traffic and the reports go to /tmp, the root filesystem is read-only
  volume {
    name = "tmp"
  }
  # The command comes with each RunTask (`python -m fearless.loadtest.fleet_task master|worker`).
  container_definitions = jsonencode([{
    name                   = "locust"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    portMappings           = [{ containerPort = local.master_port, protocol = "tcp" }]
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    environment            = [{ name = "FEARLESS_AWS_REGION", value = data.aws_region.this.name }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = var.log_group_name
        "awslogs-region"        = data.aws_region.this.name
        "awslogs-stream-prefix" = "loadgen"
      }
    }
  }])
  tags = var.tags
}
