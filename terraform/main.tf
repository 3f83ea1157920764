# The embbench host: one EC2 instance (c7i.4xlarge by default) that sets itself up from user_data.sh,
# reachable by SSH from one CIDR only, and that terminates itself after var.max_hours.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

# Ubuntu 22.04 LTS, the newest Canonical image.
data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd*/ubuntu-jammy-22.04-amd64-server-*"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

data "aws_vpc" "default" {
  count   = var.subnet_id == null ? 1 : 0
  default = true
}

data "aws_subnets" "default" {
  count = var.subnet_id == null ? 1 : 0

  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default[0].id]
  }

  filter {
    name   = "default-for-az"
    values = ["true"]
  }
}

data "aws_subnet" "chosen" {
  id = var.subnet_id != null ? var.subnet_id : sort(data.aws_subnets.default[0].ids)[0]
}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition

  hf_token_parameter_arn = var.hf_token_parameter == "" ? "" : format(
    "arn:%s:ssm:%s:%s:parameter/%s", local.partition, var.region, local.account, trimprefix(var.hf_token_parameter, "/"),
  )

  # user_data.sh reads its settings from shell assignments put before it, each value single-quoted
  # (a ' inside becomes '\'').
  settings = {
    EMBBENCH_REPO_URL           = var.repo_url
    EMBBENCH_GIT_REF            = var.git_ref
    EMBBENCH_MAX_HOURS          = tostring(var.max_hours)
    EMBBENCH_AUTORUN            = tostring(var.autorun)
    EMBBENCH_REGION             = var.region
    EMBBENCH_HF_TOKEN_PARAMETER = var.hf_token_parameter
    EMBBENCH_RESULTS_BUCKET     = var.results_bucket
    EMBBENCH_RESULTS_PREFIX     = var.results_prefix
  }
  user_data = join("\n", concat(
    ["#!/usr/bin/env bash", "# Settings from Terraform (terraform/main.tf); the script follows."],
    [for k, v in local.settings : "${k}='${replace(v, "'", "'\\''")}'"],
    [file("${path.module}/user_data.sh")],
  ))
}

# Inbound: SSH from one CIDR, nothing else. Outbound: HTTP(S) only (apt, git, crates.io, PyPI, npm,
# Docker Hub, Hugging Face, S3, SSM). DNS and NTP go to the VPC's link-local resolvers, which security
# groups do not filter. Rules are inline so that the group is the whole truth about its traffic.
resource "aws_security_group" "host" {
  name_prefix = "${var.name}-"
  description = "embbench host: SSH from one CIDR; HTTP and HTTPS out"
  vpc_id      = data.aws_subnet.chosen.vpc_id

  ingress {
    description = "SSH from the operator address only"
    protocol    = "tcp"
    from_port   = 22
    to_port     = 22
    cidr_blocks = [var.allowed_ssh_cidr]
  }

  egress {
    description = "HTTPS out: package registries, git, Hugging Face, AWS APIs"
    protocol    = "tcp"
    from_port   = 443
    to_port     = 443
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    description = "HTTP out: Ubuntu and Debian package mirrors (apt verifies signatures)"
    protocol    = "tcp"
    from_port   = 80
    to_port     = 80
    cidr_blocks = ["0.0.0.0/0"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

# The instance role: empty unless an option below needs a permission, each scoped to one resource.
data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "host" {
  name_prefix        = "${var.name}-"
  description        = "embbench host: optional results upload and HF_TOKEN read"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

resource "aws_iam_instance_profile" "host" {
  name_prefix = "${var.name}-"
  role        = aws_iam_role.host.name
}

data "aws_iam_policy_document" "results_upload" {
  count = var.results_bucket == "" ? 0 : 1

  statement {
    sid       = "PutResultsOnly"
    actions   = ["s3:PutObject"]
    resources = ["arn:${local.partition}:s3:::${var.results_bucket}/${var.results_prefix}*"]
  }
}

resource "aws_iam_role_policy" "results_upload" {
  count  = var.results_bucket == "" ? 0 : 1
  name   = "results-upload"
  role   = aws_iam_role.host.id
  policy = data.aws_iam_policy_document.results_upload[0].json
}

data "aws_iam_policy_document" "hf_token" {
  count = var.hf_token_parameter == "" ? 0 : 1

  statement {
    sid       = "ReadHfTokenParameter"
    actions   = ["ssm:GetParameter"]
    resources = [local.hf_token_parameter_arn]
  }

  dynamic "statement" {
    for_each = var.hf_token_kms_key_arn == null ? [] : [var.hf_token_kms_key_arn]
    content {
      sid       = "DecryptHfTokenViaSsm"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "hf_token" {
  count  = var.hf_token_parameter == "" ? 0 : 1
  name   = "hf-token-read"
  role   = aws_iam_role.host.id
  policy = data.aws_iam_policy_document.hf_token[0].json
}

resource "aws_iam_role_policy_attachment" "ssm_session" {
  count      = var.enable_ssm_session ? 1 : 0
  role       = aws_iam_role.host.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_instance" "host" {
  #checkov:skip=CKV_AWS_88:The operator reaches the host by SSH from var.allowed_ssh_cidr only, so it needs a public IP
  ami                    = data.aws_ami.ubuntu.id
  instance_type          = var.instance_type
  key_name               = var.key_name
  subnet_id              = data.aws_subnet.chosen.id
  vpc_security_group_ids = [aws_security_group.host.id]
  iam_instance_profile   = aws_iam_instance_profile.host.name

  associate_public_ip_address = true
  ebs_optimized               = true
  monitoring                  = true

  # Cost guard, part 1: a halt from inside (user_data's deadline, or `sudo shutdown -h now`)
  # terminates the instance instead of leaving a stopped one that still bills its volume.
  instance_initiated_shutdown_behavior = "terminate"

  user_data                   = local.user_data
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1          # containers cannot reach the instance's credentials
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    encrypted             = true
    delete_on_termination = true
    tags                  = merge({ Project = "embbench", Name = var.name }, var.tags)
  }

  dynamic "instance_market_options" {
    for_each = var.use_spot ? [1] : []
    content {
      market_type = "spot"
      spot_options {
        spot_instance_type             = "one-time"
        instance_interruption_behavior = "terminate"
        max_price                      = var.spot_max_price
      }
    }
  }

  tags = {
    Name = var.name
  }
}
